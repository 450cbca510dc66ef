import request from 'supertest';
import { createService, type EventTransport, type StoredEvent } from '@blog/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { moderationProjection } from '../../moderation/src/projection.js';
import { startNatsStack } from '../support/nats-stack.js';
import { useNats } from '../support/nats.js';
import { startStack, waitFor } from '../support/stack.js';
import { describeEachTransport } from '../support/transports.js';
import { commentsProjection } from '../../comments/src/projection.js';
import { commentsPublicRoutes, commentsRawRoutes, commentsRoutes } from '../../comments/src/routes.js';

let stack: Awaited<ReturnType<typeof startStack>>;
let api: ReturnType<typeof request>;
const bus = () => request(stack.busUrl);
const publishPost = (id: string) =>
  bus()
    .post('/events')
    .send({ type: 'PostCreated', data: { id, title: id } })
    .expect(200);

beforeAll(async () => {
  stack = await startStack([
    {
      name: 'comments',
      projection: commentsProjection,
      routes: commentsRoutes,
      rawRoutes: commentsRawRoutes,
      publicRoutes: commentsPublicRoutes,
    },
    { name: 'moderation', projection: moderationProjection },
  ]);
  api = request(stack.urls.comments!);
  await publishPost('p1');
});
afterAll(() => stack.stop());

describe('comments API', () => {
  it('answers [] for a post without comments', async () => {
    await api.get('/posts/p1/comments').expect(200, []);
  });

  it('creates a pending comment: 201 with the whole array, CommentCreated on the bus', async () => {
    const res = await api.post('/posts/p1/comments').send({ content: 'first!' }).expect(201);
    expect(res.body).toEqual([
      { id: expect.stringMatching(/^[0-9a-f]{8}$/), content: 'first!', status: 'pending' },
    ]);
    const second = await api.post('/posts/p1/comments').send({ content: 'second' }).expect(201);
    expect(second.body.map((c: { content: string }) => c.content)).toEqual(['first!', 'second']);
    const events = (await bus().get('/events')).body as { type: string; data: { id: string } }[];
    expect(events).toContainEqual(
      expect.objectContaining({
        type: 'CommentCreated',
        data: { id: res.body[0].id, content: 'first!', postId: 'p1', status: 'pending' },
      }),
    );
  });

  it('moves a comment to approved or rejected once moderated, and emits CommentUpdated once', async () => {
    const fine = (await api.post('/posts/p1/comments').send({ content: 'apples' }).expect(201)).body.at(-1);
    const bad = (await api.post('/posts/p1/comments').send({ content: 'an orange' }).expect(201)).body.at(-1);
    await waitFor(async () => {
      const list = (await api.get('/posts/p1/comments')).body as { id: string; status: string }[];
      return (
        list.find((c) => c.id === fine.id)?.status === 'approved' &&
        list.find((c) => c.id === bad.id)?.status === 'rejected'
      );
    });
    await waitFor(async () => {
      const events = (await bus().get('/events')).body as {
        type: string;
        data: { id: string; status: string };
      }[];
      const updates = events.filter((e) => e.type === 'CommentUpdated' && e.data.id === bad.id);
      return updates.length === 1 && updates[0]!.data.status === 'rejected';
    });
  });

  it('accepts a comment on a post published a moment ago (catches up before 404)', async () => {
    await publishPost('fresh');
    await api.post('/posts/fresh/comments').send({ content: 'quick' }).expect(201);
  });

  it('answers 404 JSON for a comment on an unknown post and publishes nothing', async () => {
    const res = await api.post('/posts/unknown/comments').send({ content: 'x' }).expect(404);
    expect(res.body.errors[0].message).toMatch(/not found/);
    // (Other tests' moderations may still be landing, so look for this one, not at the log's length.)
    const events = (await bus().get('/events')).body as { data: { postId?: string } }[];
    expect(events.filter((event) => event.data.postId === 'unknown')).toEqual([]);
  });

  it.each([
    [{}, 'content'],
    [{ content: '' }, 'content'],
    [{ content: ['a'] }, 'content'],
    [{ content: 'x'.repeat(5001) }, 'content'],
  ])('refuses %j with 400 naming %s', async (body, field) => {
    const res = await api.post('/posts/p1/comments').send(body).expect(400);
    expect(res.body.errors[0].field).toBe(field);
  });

  it('answers 400 JSON for a path with broken percent-encoding', async () => {
    const res = await api.get('/posts/%E0%A4%A/comments').expect(400);
    expect(res.body.errors[0]).toEqual({ message: expect.stringMatching(/percent-encoding/), field: 'path' });
  });

  it('acknowledges a moderation of an unknown comment instead of crashing', async () => {
    await api
      .post('/events')
      .send({
        type: 'CommentModerated',
        data: { id: 'ghost', postId: 'p1', status: 'approved', content: 'x' },
      })
      .expect(200, {});
    await api.get('/healthz').expect(200);
  });
});

describe('comments API, the bus gone between the publish and the read', () => {
  it('still answers 201 with the new comment in the array', async () => {
    // The log holds PostCreated p1; the publish of the comment lands at seq 3 (someone else's event took
    // seq 2), and from then on every read of the log fails, as when the bus is SIGKILLed right after a commit.
    let busUp = true;
    const transport: EventTransport = {
      publish: async () => ({ seq: 3, id: 'stored-before-the-crash' }),
      fetchAfter: async (after) => {
        if (!busUp) throw new Error('connect ECONNREFUSED');
        const first = { seq: 1, id: 'e1', type: 'PostCreated', data: { id: 'p1', title: 'T' } };
        return { events: after === 0 ? [first] : [] };
      },
      close: () => undefined,
    };
    const service = createService(
      { name: 'comments', projection: commentsProjection, routes: commentsRoutes },
      { env: { PORT: '0', LOG_LEVEL: 'silent' }, transport },
    );
    await service.subscriber.start();
    busUp = false;
    const res = await request(service.app).post('/posts/p1/comments').send({ content: 'mine' }).expect(201);
    expect(res.body).toEqual([{ id: expect.any(String), content: 'mine', status: 'pending' }]);
    await service.stop();
  });

  it('answers 503, not 500, for a comment on a post it does not know yet while the bus is unreachable', async () => {
    const transport: EventTransport = {
      publish: async () => Promise.reject(new Error('connect ECONNREFUSED')),
      fetchAfter: async () => Promise.reject(new Error('connect ECONNREFUSED')),
      close: () => undefined,
    };
    const service = createService(
      { name: 'comments', projection: commentsProjection, routes: commentsRoutes },
      { env: { PORT: '0', LOG_LEVEL: 'silent' }, transport },
    );
    const res = await request(service.app).post('/posts/p9/comments').send({ content: 'early' }).expect(503);
    // A transport of its own that fails with a plain error: named by what it is, the event log.
    expect(res.body.errors[0].message).toBe('The event log is unavailable, try again');
    await service.stop();
  });
});

describe('comments API, the moderation applied before the answer', () => {
  it('answers the new comment pending, as its own event created it', async () => {
    // The log holds PostCreated p1; someone else's event takes seq 2, the comment lands at seq 3, and its
    // moderation at seq 4: the read of the gap up to seq 3 brings the moderation with it.
    const log: StoredEvent[] = [{ seq: 1, id: 'e1', type: 'PostCreated', data: { id: 'p1', title: 'T' } }];
    const transport: EventTransport = {
      async publish(event) {
        const id = event.id ?? 'no-id';
        const { id: commentId, content } = event.data as { id: string; content: string };
        const moderated = { id: commentId, postId: 'p1', content, status: 'approved' };
        log.push(
          { seq: 2, id: 'e2', type: 'PostCreated', data: { id: 'p2', title: 'T' } },
          { ...event, seq: 3, id },
          { seq: 4, id: `${id}/CommentModerated`, type: 'CommentModerated', data: moderated },
        );
        return { seq: 3, id };
      },
      fetchAfter: async (after) => ({ events: log.filter((event) => event.seq > after) }),
      close: () => undefined,
    };
    const service = createService(
      { name: 'comments', projection: commentsProjection, routes: commentsRoutes },
      { env: { PORT: '0', LOG_LEVEL: 'silent' }, transport },
    );
    await service.subscriber.start();
    const res = await request(service.app).post('/posts/p1/comments').send({ content: 'mine' }).expect(201);
    expect(res.body).toEqual([{ id: expect.any(String), content: 'mine', status: 'pending' }]);
    // The state has moved on; the answer did not follow it.
    expect((await request(service.app).get('/posts/p1/comments')).body[0].status).toBe('approved');
    await service.stop();
  });
});

describeEachTransport('comments API, the 201 as the course answers it', (transport) => {
  const nats = transport === 'nats' ? useNats() : undefined;
  let urls: { comments: string; bus: string };
  let stopNats: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    if (!nats) return void (urls = { comments: stack.urls.comments!, bus: stack.busUrl });
    const natsStack = await startNatsStack(nats().url, { names: ['comments', 'moderation'] });
    urls = { comments: natsStack.urls.comments, bus: natsStack.urls['event-bus'] };
    stopNats = () => natsStack.stop();
  });
  afterAll(() => stopNats?.());

  it('shows every new comment pending, its moderation following right behind', async () => {
    await request(urls.bus)
      .post('/events')
      .send({ type: 'PostCreated', data: { id: 'many', title: 'many' } })
      .expect(200);
    const api = request(urls.comments);
    await waitFor(async () => (await api.get('/posts/many/comments')).status === 200);
    const made: string[] = [];
    for (let i = 0; i < 20; i++) {
      const res = await api
        .post('/posts/many/comments')
        .send({ content: `comment ${i}` })
        .expect(201);
      expect(res.body).toHaveLength(i + 1);
      expect(res.body.at(-1)).toEqual({ id: expect.any(String), content: `comment ${i}`, status: 'pending' });
      made.push(res.body.at(-1).id);
    }
    await waitFor(async () => {
      const list = (await api.get('/posts/many/comments')).body as { id: string; status: string }[];
      return list.length === made.length && list.every((comment) => comment.status === 'approved');
    });
  });
});
