import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystem } from '../scripts/src/process/system.js';
import type { System } from '../scripts/src/process/system-types.js';
import { blogClient } from './support/client.js';
import { raw, type RawAnswer } from './support/raw-http.js';
import { waitFor } from './support/stack.js';

/**
 * With the bus down, every 503 says what is unavailable ("the event bus") and never where it lives: its
 * host, port and URL stay in the service's log, where an operator looks for them. Real processes, so the
 * log lines are the ones `npm start` prints.
 */
let system: System;
const lines = new Map<string, string[]>();
let postId: string;
let commentId: string;

beforeAll(async () => {
  system = await startSystem({
    quiet: true,
    env: { LOG_LEVEL: 'info' },
    onLine: (name, line) => lines.set(name, [...(lines.get(name) ?? []), line]),
    onStatus: () => undefined,
  });
  const blog = blogClient(system.urls);
  postId = (await blog.createPost('kept')).body.id;
  commentId = (await blog.createComment(postId, 'fine')).body[0].id;
  await waitFor(async () => (await blog.comments(postId))[0]?.status === 'approved');
  await system.kill('event-bus');
});
afterAll(() => system?.stop());

const json = { 'content-type': 'application/json' };
const busPort = () => String(system.ports['event-bus']);

/** A 503 JSON whose every message names the event bus, and no host, port or URL. */
function expectNamesTheBusOnly(res: RawAnswer, what: string) {
  expect(res.status, `${what}: ${res.body}`).toBe(503);
  const body = JSON.parse(res.body) as { errors?: { message: string }[]; reason?: string };
  const messages = body.errors?.map((error) => error.message) ?? [body.reason!];
  for (const message of messages) expect(message, what).toMatch(/the event bus/i);
  expect(res.body, what).not.toMatch(/localhost|127\.0\.0\.1|http:|event-bus-srv/);
  expect(res.body, what).not.toContain(busPort());
}

describe('503 answers while the bus is down', () => {
  it('a command: POST /posts/create', async () => {
    const res = await raw(system.urls.posts, {
      method: 'POST',
      path: '/posts/create',
      headers: json,
      body: '{"title":"lost"}',
    });
    expectNamesTheBusOnly(res, 'POST /posts/create');
  });

  it('a comment on a post comments must look up first', async () => {
    const res = await raw(system.urls.comments, {
      method: 'POST',
      path: '/posts/unknown1/comments',
      headers: json,
      body: '{"content":"hello"}',
    });
    expectNamesTheBusOnly(res, 'POST /posts/unknown1/comments');
  });

  it('a delivery whose reaction cannot be published', async () => {
    // A moderation delivered by hand: comments reacts with CommentUpdated and must publish it.
    const event = {
      type: 'CommentModerated',
      data: { id: commentId, postId, status: 'rejected', content: 'fine' },
    };
    const res = await raw(system.urls.comments, {
      method: 'POST',
      path: '/events',
      headers: json,
      body: JSON.stringify(event),
    });
    expectNamesTheBusOnly(res, 'POST /events (comments)');
  });

  it('GET /readyz', async () => {
    let res: RawAnswer | undefined;
    await waitFor(async () => (res = await raw(system.urls.query, { path: '/readyz' })).status === 503);
    expectNamesTheBusOnly(res!, 'GET /readyz');
  });

  it('keeps the address in the log line of each refusal', async () => {
    const address = new RegExp(`localhost:${busPort()} unreachable`);
    for (const name of ['posts', 'comments', 'query'] as const) {
      const logged = () => (lines.get(name) ?? []).filter((line) => /request failed|not ready/.test(line));
      // The lines come through the process's stdout, a moment after the answers.
      await waitFor(() => logged().length > 0, { message: `no refusal logged by ${name}` });
      for (const line of logged()) expect(line, name).toMatch(address);
    }
  });
});
