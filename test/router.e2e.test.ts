import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystem } from '../scripts/src/process/system.js';
import type { System } from '../scripts/src/process/system-types.js';
import { blogClient } from './support/client.js';
import { waitFor } from './support/stack.js';

// The router in front of the five real services, as `npm start` runs them: the course's calls all go to
// the one address, and only where the Ingress sends them.
let system: System;
let app: string;
let blog: ReturnType<typeof blogClient>;

beforeAll(async () => {
  system = await startSystem({ quiet: true, env: { LOG_LEVEL: 'warn' }, router: true });
  app = system.router!.url;
  blog = blogClient({ posts: app, comments: app, query: app, 'event-bus': system.urls['event-bus'] });
});
afterAll(() => system?.stop());

/** The first `count` SSE messages of GET /posts/live, read as they come. */
function liveMessages(count: number, whenOpen: () => void): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const messages: string[] = [];
    let opened = false;
    const req = http.get(`${app}/posts/live`, (res) => {
      expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
      expect(res.headers['x-accel-buffering']).toBe('no');
      let buffer = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        buffer += chunk;
        const blocks = buffer.split('\n\n');
        buffer = blocks.pop()!;
        for (const block of blocks) if (block.includes('data: ')) messages.push(block);
        if (!opened && messages.length > 0) {
          opened = true;
          whenOpen();
        }
        if (messages.length >= count) {
          req.destroy();
          resolve(messages);
        }
      });
    });
    req.on('error', reject);
  });
}

describe('the router in front of the real services', () => {
  it('carries the course flow: post, comment, moderation seen in query, all at one address', async () => {
    const post = await blog.createPost('Through the router');
    expect(post.status).toBe(201);
    const comment = await blog.createComment(post.body.id, 'Fine');
    expect(comment.status).toBe(201);
    await waitFor(async () => (await blog.query())[post.body.id]?.comments[0]?.status === 'approved');
  });

  it('streams /posts/live from query through the router, event by event', async () => {
    let publish: Promise<unknown> | undefined;
    const messages = await liveMessages(2, () => {
      publish = blog.createPost('Pushed');
    });
    await publish;
    expect(messages[0]).toContain('event: snapshot');
    expect(JSON.parse(messages[1]!.split('data: ')[1]!)).toMatchObject({
      type: 'PostCreated',
      data: { title: 'Pushed' },
    });
  });

  it('keeps the bus and every service’s /events, /metrics and /healthz out of reach', async () => {
    const before = (await blog.events()).length;
    for (const path of ['/events', '/metrics', '/healthz', '/readyz', '/subscribers', '/dead-letters']) {
      const response = await fetch(`${app}${path}`);
      expect(response.headers.get('content-type'), path).toBe('text/html; charset=utf-8');
      expect(await response.text(), path).toContain('<div id="root">');
    }
    const publish = await fetch(`${app}/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ type: 'PostCreated', data: { id: 'x', title: 'sneaked in' } }),
    });
    expect(publish.status).toBe(405);
    expect((await blog.events()).length).toBe(before);
  });

  it('answers 502 JSON while a service is down, and routes to it again once it is back', async () => {
    await system.kill('query');
    const down = await fetch(`${app}/posts`);
    expect(down.status).toBe(502);
    expect(await down.json()).toEqual({
      errors: [{ message: expect.stringContaining('the query service (query-srv:4002) is not reachable') }],
    });
    await system.restart('query');
    expect((await fetch(`${app}/posts`)).status).toBe(200);
  });
});

describe('the router, as startSystem starts it', () => {
  it('is started by startSystem only on a free port: a taken one is named before anything starts', async () => {
    const taken = http.createServer();
    await new Promise<void>((resolve) => taken.listen(0, resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      await expect(startSystem({ quiet: true, router: { port } })).rejects.toThrow(
        `Port already in use: ${port} (router)`,
      );
    } finally {
      taken.close();
    }
  });
});
