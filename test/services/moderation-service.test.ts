import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StoredEvent } from '@blog/common';
import { startStack, waitFor } from '../support/stack.js';
import { moderationProjection } from '../../moderation/src/projection.js';

let stack: Awaited<ReturnType<typeof startStack>>;
const log = async () => (await request(stack.busUrl).get('/events')).body as StoredEvent[];

beforeAll(async () => {
  stack = await startStack([{ name: 'moderation', projection: moderationProjection }]);
});
afterAll(() => stack.stop());

describe('moderation service', () => {
  it('answers every CommentCreated on the bus with one CommentModerated', async () => {
    const comment = { id: 'c1', content: 'orange juice', postId: 'p1', status: 'pending' };
    await request(stack.busUrl).post('/events').send({ type: 'CommentCreated', data: comment }).expect(200);
    await waitFor(async () => (await log()).some((e) => e.type === 'CommentModerated'));
    const moderated = (await log()).filter((e) => e.type === 'CommentModerated');
    expect(moderated).toEqual([
      expect.objectContaining({
        data: { id: 'c1', postId: 'p1', status: 'rejected', content: 'orange juice' },
      }),
    ]);
  });

  it('does not moderate twice when the same comment is sent to it by hand again', async () => {
    const comment = { id: 'c2', content: 'fine', postId: 'p1', status: 'pending' };
    const api = request(stack.urls.moderation!);
    await api.post('/events').send({ type: 'CommentCreated', data: comment }).expect(200, {});
    await api.post('/events').send({ type: 'CommentCreated', data: comment }).expect(200, {});
    const moderated = (await log()).filter((e) => e.type === 'CommentModerated' && e.data.id === 'c2');
    expect(moderated).toHaveLength(1);
    expect(moderated[0]!.data.status).toBe('approved');
  });

  it('refuses a malformed CommentCreated with 400 JSON', async () => {
    const res = await request(stack.urls.moderation!)
      .post('/events')
      .send({ type: 'CommentCreated', data: { id: 'c3', content: 7, postId: 'p1', status: 'pending' } })
      .expect(400);
    expect(res.body.errors[0].field).toBe('data.content');
  });
});
