import { randomBytes } from 'node:crypto';
import { createService, HttpTransport, NatsTransport } from '@blog/common';
import { natsAvailability } from '@blog/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postsPublicRoutes, postsRoutes } from '../posts/src/routes.js';
import { postsProjection } from '../posts/src/projection.js';
import { queryProjection } from '../query/src/projection.js';
import { queryPublicRoutes, queryRawRoutes } from '../query/src/routes.js';
import type { ServiceName } from '../scripts/src/process/names.js';
import { startSystem } from '../scripts/src/process/system.js';
import type { System } from '../scripts/src/process/system-types.js';
import { blogClient } from './support/client.js';
import { raw } from './support/raw-http.js';
import { startStack, waitFor } from './support/stack.js';

/**
 * EVENT_BUS_TOKEN on the real system: the five services as processes, as `npm start` runs them with the
 * token in its environment. Whoever lacks the token can neither publish to the bus, nor deliver to a
 * service, nor read the log; the blog works unchanged for its users; and the two forgeries possible
 * on the open bus (a rejected comment approved by a forged CommentModerated; a fake CommentCreated reusing
 * a rejected comment's id, which moderation approved) are refused and change nothing.
 */
const TOKEN = randomBytes(24).toString('hex');
const WRONG = randomBytes(24).toString('hex');
const json = { 'Content-Type': 'application/json' };
/** Each way of lacking the token: none, a wrong one, the right one without the scheme. */
const WITHOUT_TOKEN: [string, Record<string, string>][] = [
  ['no token', {}],
  ['a wrong token', { Authorization: `Bearer ${WRONG}` }],
  ['the token without "Bearer"', { Authorization: TOKEN }],
];

let system: System;
let blog: ReturnType<typeof blogClient>;
const lines: { name: string; line: string }[] = [];

beforeAll(async () => {
  system = await startSystem({
    quiet: true,
    eventBusToken: TOKEN,
    env: { LOG_LEVEL: 'info' },
    serviceEnv: { 'event-bus': { RETRY_MAX_MS: '500' } },
    onLine: (name, line) => lines.push({ name, line }),
    onStatus: () => undefined,
  });
  blog = blogClient(system.urls, { token: TOKEN });
});
afterAll(() => system?.stop());

/** A POST of `body` to `route` of a service, with `headers`: its status, headers and JSON body. */
async function post(name: ServiceName, route: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${system.urls[name]}${route}`, {
    method: 'POST',
    headers: { ...headers, ...json },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as unknown };
}

/** Every forgery must get this: 401 JSON, WWW-Authenticate: Bearer, no token in the answer. */
function expectRefused(answer: Awaited<ReturnType<typeof post>>, what: string) {
  expect(answer.status, what).toBe(401);
  expect(answer.headers.get('www-authenticate'), what).toBe('Bearer');
  expect(answer.body, what).toEqual({
    errors: [{ message: expect.stringContaining('token'), field: 'authorization' }],
  });
  expect(JSON.stringify(answer.body)).not.toContain(TOKEN);
}

/** A post created through the app, once query has it: after it, anything accepted earlier shows too. */
async function marker(title: string): Promise<string> {
  const created = await blog.createPost(title);
  expect(created.status).toBe(201);
  await waitFor(async () => (await blog.query())[created.body.id] !== undefined, { timeoutMs: 15_000 });
  return created.body.id as string;
}

async function commentWithStatus(content: string, status: 'approved' | 'rejected') {
  const post = await blog.createPost(`post for "${content}"`);
  const [comment] = (await blog.createComment(post.body.id, content)).body as { id: string }[];
  const postId = post.body.id as string;
  await waitFor(
    async () => (await blog.query())[postId]?.comments.find((c) => c.id === comment!.id)?.status === status,
    { timeoutMs: 15_000 },
  );
  return { postId, commentId: comment!.id };
}

describe('the blog with EVENT_BUS_TOKEN (real processes)', () => {
  it('works end to end: a post, an approved comment and a rejected one, in every view and the log', async () => {
    const approved = await commentWithStatus('Nice post', 'approved');
    const rejected = await commentWithStatus('I prefer orange', 'rejected');
    expect(await blog.comments(approved.postId)).toEqual([
      { id: approved.commentId, content: 'Nice post', status: 'approved' },
    ]);
    expect(await blog.comments(rejected.postId)).toEqual([
      { id: rejected.commentId, content: 'I prefer orange', status: 'rejected' },
    ]);
    const types = (await blog.events()).map((event) => event.type);
    expect(types).toEqual(
      expect.arrayContaining(['PostCreated', 'CommentCreated', 'CommentModerated', 'CommentUpdated']),
    );
  });

  it('refuses publishes and deliveries without the token, and nothing changes in the log or a view', async () => {
    const before = { events: await blog.events(), query: await blog.query() };
    const head = before.events.length;
    const forged = { type: 'PostCreated', data: { id: 'forged01', title: 'Forged' } };
    for (const [what, headers] of WITHOUT_TOKEN) {
      expectRefused(await post('event-bus', '/events', forged, headers), `bus, ${what}`);
      expectRefused(await post('event-bus', '/events', [forged], headers), `bus (array), ${what}`);
      for (const name of ['posts', 'comments', 'query', 'moderation'] as const) {
        // The course's form, and ours with the next seq (what a forger would send to be applied in order).
        expectRefused(await post(name, '/events', forged, headers), `${name}, ${what}`);
        expectRefused(await post(name, '/events', { ...forged, seq: head + 1 }, headers), `${name}, ${what}`);
      }
    }
    const markerId = await marker('after the forgeries');
    const after = { events: await blog.events(), query: await blog.query() };
    expect(after.events.slice(0, head)).toEqual(before.events);
    expect(after.events.slice(head).map((event) => event.data.id)).toEqual([markerId]);
    expect(after.query.forged01).toBeUndefined();
    expect(Object.keys(after.query).sort()).toEqual([...Object.keys(before.query), markerId].sort());
    expect((await blog.postsOfPosts()).forged01).toBeUndefined();
  });

  it('refuses a forged CommentModerated that would approve a rejected comment', async () => {
    const { postId, commentId } = await commentWithStatus('orange again', 'rejected');
    const head = (await blog.events()).length;
    const approve = {
      type: 'CommentModerated',
      data: { id: commentId, postId, status: 'approved', content: 'orange again' },
    };
    const update = { ...approve, type: 'CommentUpdated' };
    for (const [what, headers] of WITHOUT_TOKEN) {
      expectRefused(await post('event-bus', '/events', approve, headers), `bus, ${what}`);
      expectRefused(await post('comments', '/events', approve, headers), `comments, ${what}`);
      expectRefused(await post('query', '/events', update, headers), `query, ${what}`);
    }
    await marker('after the forged moderation');
    expect((await blog.query())[postId]!.comments).toEqual([
      { id: commentId, content: 'orange again', status: 'rejected' },
    ]);
    expect(await blog.comments(postId)).toEqual([
      { id: commentId, content: 'orange again', status: 'rejected' },
    ]);
    expect((await blog.events()).slice(head).map((event) => event.type)).toEqual(['PostCreated']);
  });

  it('refuses a fake CommentCreated sent to moderation under a rejected comment’s id', async () => {
    const { postId, commentId } = await commentWithStatus('orange for sure', 'rejected');
    const fake = {
      type: 'CommentCreated',
      data: { id: commentId, postId, content: 'a harmless comment', status: 'pending' },
    };
    for (const [what, headers] of WITHOUT_TOKEN) {
      expectRefused(await post('moderation', '/events', fake, headers), `moderation, ${what}`);
    }
    await marker('after the fake comment');
    const decisions = (await blog.events()).filter(
      (event) => event.type === 'CommentModerated' && event.data.id === commentId,
    );
    expect(decisions.map((event) => event.data.status)).toEqual(['rejected']);
    expect((await blog.query())[postId]!.comments[0]!.status).toBe('rejected');
  });

  it('lets only token holders read the log, and anyone ask the probes and metrics', async () => {
    const bus = system.urls['event-bus'];
    for (const route of ['/events', '/events?after=0&limit=10', '/subscribers', '/dead-letters']) {
      for (const [what, headers] of WITHOUT_TOKEN) {
        const res = await fetch(`${bus}${route}`, { headers });
        expect(res.status, `${route}, ${what}`).toBe(401);
        expect(res.headers.get('x-last-seq'), route).toBeNull();
        expect(await res.text(), route).not.toMatch(/"seq"|"cursor"|"lag"/);
      }
      const allowed = await fetch(`${bus}${route}`, { headers: { Authorization: `Bearer ${TOKEN}` } });
      expect(allowed.status, route).toBe(200);
    }
    for (const [name, url] of Object.entries(system.urls)) {
      for (const route of ['/healthz', '/readyz', '/metrics']) {
        expect((await fetch(`${url}${route}`)).status, `${name} ${route}`).toBe(200);
      }
    }
  });

  it('logs each refusal once, as a warning, and never the token', async () => {
    const refusals = () =>
      lines.filter(({ line }) => line.includes('request refused') && line.includes('"status":401'));
    const before = refusals().length;
    const names = ['event-bus', 'posts', 'comments', 'query', 'moderation'] as const;
    for (const name of names) {
      await post(name, '/events', { type: 'T', data: {} }, { Authorization: `Bearer ${WRONG}` });
    }
    // A 404 after them on every process: once each one's 404 is logged, its 401 before it is too.
    for (const name of names) await fetch(`${system.urls[name]}/after-the-refusal`);
    await waitFor(() =>
      names.every((name) => lines.some((l) => l.name === name && l.line.includes('after-the-refusal'))),
    );
    expect(refusals().length - before).toBe(names.length);
    for (const { line } of refusals().slice(before)) expect(JSON.parse(line)).toMatchObject({ level: 40 });
    for (const { line } of lines) {
      expect(line).not.toContain(TOKEN);
      expect(line).not.toContain(WRONG);
    }
  });
});

const nats = natsAvailability({ needs: 'binary' });

describe.skipIf(nats.skip)(`the blog on NATS with EVENT_BUS_TOKEN (real processes; ${nats.reason})`, () => {
  let onNats: System;
  let natsBlog: ReturnType<typeof blogClient>;
  beforeAll(async () => {
    onNats = await startSystem({
      transport: 'nats',
      eventBusToken: TOKEN,
      quiet: true,
      env: { LOG_LEVEL: 'warn' },
      onStatus: () => undefined,
    });
    natsBlog = blogClient(onNats.urls, { token: TOKEN });
  });
  afterAll(() => onNats?.stop());

  it('works end to end, every service and the bus presenting the token to the nats-server', async () => {
    const post = await natsBlog.createPost('On NATS');
    const [comment] = (await natsBlog.createComment(post.body.id, 'Fine')).body as { id: string }[];
    await waitFor(
      async () =>
        (await natsBlog.query())[post.body.id]?.comments.find((c) => c.id === comment!.id)?.status ===
        'approved',
      { timeoutMs: 15_000 },
    );
    expect((await natsBlog.events()).map((event) => event.type)).toEqual([
      'PostCreated',
      'CommentCreated',
      'CommentModerated',
      'CommentUpdated',
    ]);
  });

  it('refuses a NATS client without the token, and the gateway’s routes without it', async () => {
    const outsider = new NatsTransport({
      url: onNats.nats!.url,
      stream: onNats.nats!.stream,
      timeoutMs: 2000,
    });
    await expect(outsider.publish({ type: 'PostCreated', data: { id: 'n', title: 'n' } })).rejects.toThrow(
      /auth/i,
    );
    await outsider.close();
    const bus = onNats.urls['event-bus'];
    const forged = await fetch(`${bus}/events`, {
      method: 'POST',
      headers: json,
      body: '{"type":"PostCreated","data":{"id":"n","title":"n"}}',
    });
    expect(forged.status).toBe(401);
    expect((await fetch(`${bus}/events`)).status).toBe(401);
    expect((await natsBlog.events()).some((event) => event.data.id === 'n')).toBe(false);
  });
});

describe('a service whose token is not the bus’s', () => {
  let stack: Awaited<ReturnType<typeof startStack>>;
  let posts: ReturnType<typeof createService>;
  beforeAll(async () => {
    stack = await startStack([], { token: TOKEN });
    posts = createService(
      { name: 'posts', projection: postsProjection, routes: postsRoutes },
      { env: { PORT: '0', EVENT_BUS_URL: stack.busUrl, LOG_LEVEL: 'silent', EVENT_BUS_TOKEN: WRONG } },
    );
  });
  afterAll(async () => {
    await posts?.stop();
    await stack?.stop();
  });

  it('is told why by the bus, on every read and publish', async () => {
    const transport = new HttpTransport(stack.busUrl, { token: WRONG });
    const why = /refused the token \(401\): EVENT_BUS_TOKEN must be the same on the bus and every service/;
    await expect(transport.fetchAfter(0, 10)).rejects.toThrow(why);
    await expect(transport.publish({ type: 'T', data: {} })).rejects.toThrow(why);
    transport.close();
    expect(stack.bus.store.headSeq()).toBe(0);
  });

  it('is not ready, and answers a command 503 with nothing stored', async () => {
    const server = await posts.start();
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const readiness = await fetch(`${url}/readyz`);
    expect(readiness.status).toBe(503);
    const created = await fetch(`${url}/posts/create`, {
      method: 'POST',
      headers: json,
      body: '{"title":"never stored"}',
    });
    expect(created.status).toBe(503);
    expect(stack.bus.store.headSeq()).toBe(0);
  });
});

describe('without EVENT_BUS_TOKEN (the course’s open bus)', () => {
  let stack: Awaited<ReturnType<typeof startStack>>;
  beforeAll(async () => {
    stack = await startStack([
      { name: 'posts', projection: postsProjection, routes: postsRoutes, publicRoutes: postsPublicRoutes },
      {
        name: 'query',
        projection: queryProjection,
        rawRoutes: queryRawRoutes,
        publicRoutes: queryPublicRoutes,
      },
    ]);
  });
  afterAll(() => stack?.stop());

  it('takes a course-style {type, data} on the bus and on a service’s POST /events, with no Authorization', async () => {
    const send = (url: string, event: object) =>
      fetch(`${url}/events`, { method: 'POST', headers: json, body: JSON.stringify(event) });
    const toBus = await send(stack.busUrl, {
      type: 'PostCreated',
      data: { id: 'bybus', title: 'To the bus' },
    });
    expect(toBus.status).toBe(200);
    expect(await toBus.json()).toMatchObject({ status: 'OK', seq: 1 });
    const byHand = await send(stack.urls.query!, {
      type: 'PostCreated',
      data: { id: 'byhand', title: 'To query' },
    });
    expect(byHand.status).toBe(200);
    const query = async () =>
      (await (await fetch(`${stack.urls.query}/posts`)).json()) as Record<string, unknown>;
    await waitFor(async () => (await query()).bybus !== undefined);
    expect(await query()).toMatchObject({
      bybus: { id: 'bybus', title: 'To the bus', comments: [] },
      byhand: { id: 'byhand', title: 'To query', comments: [] },
    });
    expect((await fetch(`${stack.busUrl}/events`)).status).toBe(200);
  });

  it('refuses a request to the event path addressed to a public name, as a DNS-rebinding page sends it', async () => {
    const before = stack.bus.store.headSeq();
    const rebound = (url: string, method: string, body?: object) =>
      raw(url, {
        method,
        path: '/events',
        headers: { host: `rebound.example:${new URL(url).port}`, 'content-type': 'application/json' },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
    const forged = { type: 'PostCreated', data: { id: 'rebound', title: 'Rebound' } };
    for (const answer of [
      await rebound(stack.busUrl, 'POST', forged),
      await rebound(stack.urls.query!, 'POST', forged),
      await rebound(stack.busUrl, 'GET'),
    ]) {
      expect(answer.status).toBe(403);
      expect(JSON.parse(answer.body)).toMatchObject({ errors: [{ field: 'host' }] });
    }
    expect(stack.bus.store.headSeq()).toBe(before);
    const view = (await (await fetch(`${stack.urls.query}/posts`)).json()) as Record<string, unknown>;
    expect(view.rebound).toBeUndefined();
  });
});
