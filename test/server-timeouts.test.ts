import { setTimeout as sleep } from 'node:timers/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createService, SERVER_TIMEOUTS } from '@blog/common';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBus } from '../event-bus/src/app.js';
import { postsProjection } from '../posts/src/projection.js';
import { postsRoutes } from '../posts/src/routes.js';
import { createQueryService } from '../query/src/service.js';
import { freePort, startStack, waitFor } from './support/stack.js';

/**
 * Every server bounds how long a request may take to arrive (headers, then the whole body), so a client
 * that trickles bytes cannot hold a connection for ever; a response that streams (query's GET
 * /posts/live) is not a request still arriving, and lives on. Here the query service runs with timeouts
 * of a fraction of a second, over real sockets.
 */
const TIMEOUTS = { headersMs: 300, requestMs: 600 };
let stack: Awaited<ReturnType<typeof startStack>>;
let query: ReturnType<typeof createQueryService>;
let queryPort: number;

beforeAll(async () => {
  queryPort = await freePort();
  stack = await startStack([], { busEnv: { SUBSCRIBERS: `query=http://127.0.0.1:${queryPort}/events` } });
  query = createQueryService({
    env: { PORT: String(queryPort), EVENT_BUS_URL: stack.busUrl, LOG_LEVEL: 'silent' },
    serverTimeouts: TIMEOUTS,
  });
  await query.start();
});
afterAll(async () => {
  await query?.stop();
  await stack?.stop();
});

/** Writes `first`, then one `more` every 50 ms, up to 200 times; resolves with what came back once closed. */
function trickle(first: string, more: string) {
  return new Promise<{ answer: string; sent: number }>((resolve, reject) => {
    const socket = net.connect(queryPort, '127.0.0.1');
    let answer = '';
    let sent = 0;
    // Past 200 writes (10 s) the server has let it go on: give up, and let the test fail.
    const timer = setInterval(() => (sent++ < 200 ? socket.write(more) : socket.destroy()), 50);
    socket.write(first);
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
    socket.on('error', reject);
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ answer, sent });
    });
  });
}

describe('server timeouts', () => {
  it('cut a request whose headers trickle in, with 408 JSON', async () => {
    const { answer, sent } = await trickle('GET /posts HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toContain('{"errors":[{"message":"The request took too long to arrive"}]}');
    expect(sent).toBeLessThan(200);
  });

  it('cut a request whose body never ends, with 408 JSON, and apply nothing of it', async () => {
    const head =
      'POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n';
    const { answer, sent } = await trickle(`${head}{"type":"PostCreated","data":{"id":"slow","title":"`, 'x');
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(sent).toBeLessThan(200);
    expect(query.subscriber.state.posts.slow).toBeUndefined();
  });

  it('leave a live stream open well past them, and it still carries changes', async () => {
    const received: string[] = [];
    let closed = false;
    const req = http.get(`http://127.0.0.1:${queryPort}/posts/live`, (res) => {
      res.setEncoding('utf8').on('data', (chunk: string) => received.push(chunk));
      res.on('close', () => (closed = true));
    });
    await waitFor(() => received.join('').includes('event: snapshot'));
    await sleep(TIMEOUTS.requestMs * 4);
    await request(stack.busUrl)
      .post('/events')
      .send({ type: 'PostCreated', data: { id: 'later', title: 'After the timeouts' } })
      .expect(200);
    await waitFor(() => received.join('').includes('After the timeouts'));
    expect(closed).toBe(false);
    req.destroy();
  });

  it('leave a keep-alive connection idle between requests alone', async () => {
    const socket = net.connect(queryPort, '127.0.0.1');
    let answers = '';
    socket.on('data', (chunk: Buffer) => (answers += chunk.toString()));
    socket.on('error', () => undefined);
    const get = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    socket.write(get);
    await waitFor(() => answers.split('HTTP/1.1 200').length === 2);
    await sleep(TIMEOUTS.requestMs * 2);
    socket.write(get);
    await waitFor(() => answers.split('HTTP/1.1 200').length === 3);
    expect(answers).not.toContain('408');
    socket.destroy();
  });

  it('are set on every service and the bus by default, beside the keep-alive timeout', async () => {
    expect(SERVER_TIMEOUTS).toEqual({ headersMs: 20_000, requestMs: 30_000, keepAliveMs: 65_000 });
    const env = { PORT: '0', EVENT_BUS_URL: 'http://127.0.0.1:9', LOG_LEVEL: 'silent' };
    const posts = createService({ name: 'posts', projection: postsProjection, routes: postsRoutes }, { env });
    const dataDir = mkdtempSync(path.join(tmpdir(), 'blog-timeouts-'));
    const subscribers = 'nobody=http://127.0.0.1:9/events';
    const bus = createBus({
      env: { PORT: '0', DATA_DIR: dataDir, SUBSCRIBERS: subscribers, LOG_LEVEL: 'silent' },
    });
    try {
      for (const server of [await posts.start(), await bus.start()]) {
        expect(server.headersTimeout).toBe(20_000);
        expect(server.requestTimeout).toBe(30_000);
        expect(server.keepAliveTimeout).toBe(65_000);
      }
    } finally {
      await posts.stop();
      await bus.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
