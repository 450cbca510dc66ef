import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack, waitFor } from '../support/stack.js';
import { queryProjection } from '../../query/src/projection.js';
import { queryPublicRoutes, queryRawRoutes } from '../../query/src/routes.js';

let stack: Awaited<ReturnType<typeof startStack>>;
let api: ReturnType<typeof request>;
const publish = (type: string, data: object) =>
  request(stack.busUrl).post('/events').send({ type, data }).expect(200);

beforeAll(async () => {
  stack = await startStack([
    {
      name: 'query',
      projection: queryProjection,
      rawRoutes: queryRawRoutes,
      publicRoutes: queryPublicRoutes,
    },
  ]);
  api = request(stack.urls.query!);
});
afterAll(() => stack.stop());

describe('query API', () => {
  it('answers {} before any post', async () => {
    await api.get('/posts').expect(200, {});
  });

  it('joins posts and comments as events arrive from the bus', async () => {
    await publish('PostCreated', { id: 'p1', title: 'One' });
    await publish('CommentCreated', { id: 'c1', content: 'hi', postId: 'p1', status: 'pending' });
    await publish('CommentUpdated', { id: 'c1', content: 'hi', postId: 'p1', status: 'approved' });
    await waitFor(async () => (await api.get('/posts')).body.p1?.comments[0]?.status === 'approved');
    expect((await api.get('/posts')).body).toEqual({
      p1: { id: 'p1', title: 'One', comments: [{ id: 'c1', content: 'hi', status: 'approved' }] },
    });
  });

  it('sends the same security headers as every other route, and CORS as a public route', async () => {
    const posts = await api.get('/posts').set('Origin', 'http://posts.com').expect(200);
    const health = await api.get('/healthz').set('Origin', 'http://posts.com').expect(200);
    for (const name of ['content-security-policy', 'x-content-type-options']) {
      expect(posts.headers[name], name).toBeDefined();
      expect(posts.headers[name], name).toBe(health.headers[name]);
    }
    expect(posts.headers['access-control-allow-origin']).toBe('*');
    expect(health.headers['access-control-allow-origin']).toBeUndefined();
    expect(posts.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('answers 304 to a client holding the current version, 200 once it changed', async () => {
    const first = await api.get('/posts').expect(200);
    await api.get('/posts').set('If-None-Match', first.headers.etag!).expect(304);
    await publish('PostCreated', { id: 'p2', title: 'Two' });
    await waitFor(async () => (await api.get('/posts')).body.p2 !== undefined);
    const changed = await api.get('/posts').set('If-None-Match', first.headers.etag!).expect(200);
    expect(changed.headers.etag).not.toBe(first.headers.etag);
  });

  it('takes a course-style event by hand on POST /events', async () => {
    await api
      .post('/events')
      .send({ type: 'PostCreated', data: { id: 'hand', title: 'curl' } })
      .expect(200, {});
    expect((await api.get('/posts')).body.hand).toEqual({ id: 'hand', title: 'curl', comments: [] });
  });

  it('refuses a malformed event with 400 and changes nothing', async () => {
    const before = (await api.get('/posts')).body;
    const res = await api
      .post('/events')
      .send({ type: 'CommentCreated', data: { id: 'c9', postId: 'p1' } })
      .expect(400);
    expect(res.body.errors.map((e: { field: string }) => e.field)).toEqual(
      expect.arrayContaining(['data.content', 'data.status']),
    );
    expect((await api.get('/posts')).body).toEqual(before);
  });
});
