import { createService } from '@blog/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStack } from '../support/stack.js';
import { postsProjection } from '../../posts/src/projection.js';
import { postsPublicRoutes, postsRoutes } from '../../posts/src/routes.js';

const posts = {
  name: 'posts',
  projection: postsProjection,
  routes: postsRoutes,
  publicRoutes: postsPublicRoutes,
} as const;
let stack: Awaited<ReturnType<typeof startStack>>;
let api: ReturnType<typeof request>;
const logLength = async () => (await request(stack.busUrl).get('/events')).body.length as number;

beforeAll(async () => {
  stack = await startStack([posts]);
  api = request(stack.urls.posts!);
});
afterAll(() => stack.stop());

describe('posts API', () => {
  it('creates a post: 201 {id, title}, PostCreated on the bus, and GET /posts shows it at once', async () => {
    const created = await api.post('/posts/create').send({ title: 'Hello' }).expect(201);
    expect(created.body).toEqual({ id: expect.stringMatching(/^[0-9a-f]{8}$/), title: 'Hello' });
    const list = await api.get('/posts').expect(200);
    expect(list.body[created.body.id]).toEqual({ id: created.body.id, title: 'Hello' });
    const events = (await request(stack.busUrl).get('/events')).body;
    expect(events).toContainEqual(
      expect.objectContaining({ type: 'PostCreated', data: { id: created.body.id, title: 'Hello' } }),
    );
  });

  it('keeps the pre-Kubernetes route POST /posts', async () => {
    const created = await api.post('/posts').send({ title: 'Early lecture' }).expect(201);
    expect(created.body.title).toBe('Early lecture');
  });

  it('allows CORS, as the course does', async () => {
    const res = await api.get('/posts').set('Origin', 'http://posts.com').expect(200);
    expect(res.headers['access-control-allow-origin']).toBeDefined();
  });

  it.each([
    ['no title', {}, 'title'],
    ['an empty title', { title: '' }, 'title'],
    ['a blank title', { title: '   ' }, 'title'],
    ['a number', { title: 42 }, 'title'],
    ['a huge title', { title: 'x'.repeat(1001) }, 'title'],
  ])('refuses %s with 400 JSON naming the field, and publishes nothing', async (_name, body, field) => {
    const before = await logLength();
    const res = await api.post('/posts/create').send(body).expect(400).expect('Content-Type', /json/);
    expect(res.body.errors[0]).toMatchObject({ field, message: expect.any(String) });
    expect(await logLength()).toBe(before);
  });

  it('refuses broken JSON, a non-JSON body and an oversized body with a 4xx JSON error', async () => {
    const broken = await api
      .post('/posts/create')
      .set('Content-Type', 'application/json')
      .send('{"title":')
      .expect(400);
    expect(broken.body.errors[0].message).toMatch(/not valid JSON/);
    const text = await api
      .post('/posts/create')
      .set('Content-Type', 'text/plain')
      .send('title=x')
      .expect(400);
    expect(text.body.errors).toBeDefined();
    const large = await api
      .post('/posts/create')
      .send({ title: 'x', pad: 'y'.repeat(200_000) })
      .expect(413);
    expect(large.body.errors[0].message).toMatch(/too large/);
  });

  it('answers unknown routes with 404 JSON', async () => {
    const res = await api.get('/nope').expect(404).expect('Content-Type', /json/);
    expect(res.body.errors[0].message).toMatch(/No route/);
  });

  it('takes events on POST /events with 200 {} and refuses malformed ones with 400', async () => {
    await api
      .post('/events')
      .send({ type: 'PostCreated', data: { id: 'byhand', title: 'curl' } })
      .expect(200, {});
    expect((await api.get('/posts')).body.byhand).toEqual({ id: 'byhand', title: 'curl' });
    await api.post('/events').send({ type: 'Whatever', data: {} }).expect(200, {});
    const bad = await api
      .post('/events')
      .send({ type: 'PostCreated', data: { id: 'x' } })
      .expect(400);
    expect(bad.body.errors[0].field).toBe('data.title');
    await api.post('/events').send('"just a string"').set('Content-Type', 'application/json').expect(400);
  });

  it('serves health, readiness and Prometheus metrics', async () => {
    await api.get('/healthz').expect(200, { status: 'ok' });
    await api.get('/readyz').expect(200);
    const metrics = await api.get('/metrics').expect(200);
    expect(metrics.text).toMatch(/http_request_duration_seconds_bucket/);
    expect(metrics.text).toMatch(/events_applied_total\{.*type="PostCreated"/);
  });

  it('is not ready while the bus is unreachable, and refuses to start on a bad PORT', async () => {
    const lonely = createService(posts, {
      env: { PORT: '0', EVENT_BUS_URL: 'http://127.0.0.1:9', LOG_LEVEL: 'silent' },
    });
    const server = await lonely.start();
    const res = await request(server).get('/readyz').expect(503);
    expect(res.body).toMatchObject({ ready: false });
    await lonely.stop();
    expect(() => createService(posts, { env: { PORT: 'http' } })).toThrow(/PORT=/);
  });
});
