import http from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { raw } from '../support/raw-http.js';
import { freePort, startStack, waitFor } from '../support/stack.js';
import { createQueryService } from '../../query/src/service.js';

/**
 * GET /posts/live at scale, against a real bus delivering to a real query service: a view of several MiB,
 * many clients at once, many from one address. Read from sockets, as a browser would.
 */
let stack: Awaited<ReturnType<typeof startStack>>;
let query: ReturnType<typeof createQueryService>;
let queryUrl: string;
let posts = 0;

beforeAll(async () => {
  const port = await freePort();
  queryUrl = `http://127.0.0.1:${port}`;
  stack = await startStack([], { busEnv: { SUBSCRIBERS: `query=${queryUrl}/events` } });
  // The defaults (1 MiB of send buffer per client, 1000 clients), but 3 per address, to reach it quickly.
  query = createQueryService({
    env: { PORT: String(port), EVENT_BUS_URL: stack.busUrl, LOG_LEVEL: 'silent', LIVE_MAX_PER_ADDRESS: '3' },
  });
  await query.start();
});
afterAll(async () => {
  await query?.stop();
  await stack?.stop();
});

const viewBytes = async () => Buffer.byteLength((await request(queryUrl).get('/posts')).text);

/** Publishes posts of 9,000-character titles (9 to a request, under the 100 kB body limit) until the view holds `bytes`. */
async function growViewTo(bytes: number) {
  while ((await viewBytes()) < bytes) {
    const batch = Array.from({ length: 9 }, () => {
      const id = `big${posts++}`;
      return { type: 'PostCreated', data: { id, title: `${id} ${'x'.repeat(9000)}` } };
    });
    await request(stack.busUrl).post('/events').send(batch).expect(200);
    await waitFor(() => query.subscriber.appliedSeq === stack.bus.store.headSeq());
  }
}

const publishPost = (id: string) =>
  request(stack.busUrl)
    .post('/events')
    .send({ type: 'PostCreated', data: { id, title: id } })
    .expect(200);

/** A stream read as a browser reads it; `paused` holds it unread, as a slow link does, until `resume()`. */
function openStream({
  paused = false,
  headers = {},
}: { paused?: boolean; headers?: Record<string, string> } = {}) {
  let text = '';
  let ended = false;
  let res: http.IncomingMessage | undefined;
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get(`${queryUrl}/posts/live`, { headers }, (answer) => {
      res = answer;
      if (paused) answer.pause();
      answer.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      answer.on('close', () => (ended = true));
      resolve(answer);
    });
    req.on('error', reject);
  });
  return {
    response,
    text: () => text,
    get ended() {
      return ended;
    },
    resume: () => res?.resume(),
    close: () => res?.destroy(),
  };
}

/** The snapshot message, once it has come whole. */
const snapshotOf = (text: string) => {
  const start = text.indexOf('event: snapshot\ndata: ');
  const end = text.indexOf('\n\n', start);
  if (start === -1 || end === -1) return undefined;
  const data = text.slice(start + 'event: snapshot\ndata: '.length, end);
  return JSON.parse(data) as { posts: Record<string, unknown> };
};

describe('GET /posts/live with a large view', () => {
  it.each([
    ['over 1 MiB', 1.5],
    ['of several MiB', 6],
  ])(
    'sends a view %s whole to a client reading slowly, and keeps it for the changes after',
    async (_name, mib) => {
      await growViewTo(mib * 1024 * 1024);
      const stream = openStream({ paused: true });
      expect((await stream.response).statusCode).toBe(200);
      // Changes come while the snapshot still waits to be read.
      await publishPost(`after-${mib}-a`);
      await publishPost(`after-${mib}-b`);
      await waitFor(() => query.subscriber.appliedSeq === stack.bus.store.headSeq());
      stream.resume();
      await waitFor(() => stream.text().includes(`after-${mib}-b`), { timeoutMs: 30_000 });
      const snapshot = snapshotOf(stream.text());
      expect(Object.keys(snapshot!.posts).length).toBeGreaterThanOrEqual(posts);
      expect(Buffer.byteLength(stream.text())).toBeGreaterThan(mib * 1024 * 1024);
      expect(stream.ended).toBe(false);
      await publishPost(`after-${mib}-c`);
      await waitFor(() => stream.text().includes(`after-${mib}-c`));
      expect(stream.ended).toBe(false);
      stream.close();
    },
  );

  it('still cuts a client that stops reading, once what followed its snapshot passes 1 MiB', async () => {
    const stream = openStream({ paused: true });
    await stream.response;
    await waitFor(() => query.live.clientCount === 1);
    // Changes of 9 kB each, never read: the stream is cut once they pass the limit, not before.
    let publishedBytes = 0;
    for (let i = 0; query.live.clientCount > 0 && i < 400; i++) {
      const batch = Array.from({ length: 9 }, () => {
        const id = `unread${posts++}`;
        return { type: 'PostCreated', data: { id, title: 'y'.repeat(9000) } };
      });
      await request(stack.busUrl).post('/events').send(batch).expect(200);
      publishedBytes += 9 * 9000;
      await waitFor(() => query.subscriber.appliedSeq === stack.bus.store.headSeq());
    }
    expect(query.live.clientCount).toBe(0);
    expect(publishedBytes).toBeGreaterThan(1024 * 1024);
    stream.close();
  });
});

describe('GET /posts/live with many clients', () => {
  it('serialises the snapshot once for all the clients that connect, and each change once', async () => {
    const stringify = vi.spyOn(JSON, 'stringify');
    const isSnapshot = (value: unknown) =>
      typeof value === 'object' && value !== null && 'posts' in value && 'recent' in value;
    const isChange = (value: unknown) =>
      typeof value === 'object' && value !== null && Object.keys(value).join() === 'type,seq,id,time,data';
    const count = (which: (value: unknown) => boolean) =>
      stringify.mock.calls.filter(([value]) => which(value)).length;
    const headers = (i: number) => ({ 'x-real-ip': `192.0.2.${i}` });
    try {
      const clients = Array.from({ length: 5 }, (_, i) => openStream({ headers: headers(i) }));
      await Promise.all(clients.map((client) => client.response));
      await waitFor(() => clients.every((client) => snapshotOf(client.text())));
      expect(count(isSnapshot)).toBe(1);
      const changesBefore = count(isChange);
      await publishPost('for-everyone');
      await waitFor(() => clients.every((client) => client.text().includes('"id":"for-everyone"')));
      expect(count(isChange) - changesBefore).toBe(1);
      // The view changed: the next client gets a new snapshot, serialised once more.
      const late = openStream({ headers: headers(9) });
      await waitFor(() => snapshotOf(late.text()) !== undefined);
      expect(count(isSnapshot)).toBe(2);
      [...clients, late].forEach((client) => client.close());
    } finally {
      stringify.mockRestore();
    }
  });

  it('refuses more than LIVE_MAX_PER_ADDRESS streams from one address with 429 JSON', async () => {
    await waitFor(() => query.live.clientCount === 0);
    const open = [1, 2, 3].map(() => openStream());
    await Promise.all(open.map((stream) => stream.response));
    const refused = await raw(queryUrl, { path: '/posts/live' });
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body)).toEqual({
      errors: [{ message: expect.stringContaining('Too many live connections from one address (3)') }],
    });
    expect(refused.headers['retry-after']).toBe('5');
    // Another client, behind the same (trusted, loopback) proxy: its own count.
    const other = openStream({ headers: { 'x-real-ip': '198.51.100.7' } });
    expect((await other.response).statusCode).toBe(200);
    // One leaves: its address may open one again.
    open[0]!.close();
    await waitFor(() => query.live.clientCount === 3);
    const again = openStream();
    expect((await again.response).statusCode).toBe(200);
    [...open, other, again].forEach((stream) => stream.close());
  });

  it('believes X-Real-IP and X-Forwarded-For only from a trusted proxy', async () => {
    const port = await freePort();
    const untrusting = createQueryService({
      env: {
        PORT: String(port),
        EVENT_BUS_URL: stack.busUrl,
        LOG_LEVEL: 'silent',
        LIVE_MAX_PER_ADDRESS: '1',
      },
      live: { trustedProxies: 'none' },
    });
    await untrusting.start();
    // Caught up first: the catch-up's burst of this large log would cut a stream that reads nothing.
    await waitFor(() => untrusting.subscriber.caughtUp, { timeoutMs: 30_000 });
    try {
      const url = `http://127.0.0.1:${port}`;
      const first = http.get(`${url}/posts/live`, { headers: { 'x-real-ip': '203.0.113.1' } });
      first.on('error', () => undefined);
      await waitFor(() => untrusting.live.clientCount === 1);
      // Headers from anyone but a proxy are not believed: the same address, so refused.
      const spoofing: Record<string, string>[] = [
        { 'x-real-ip': '203.0.113.2' },
        { 'x-forwarded-for': '203.0.113.3' },
      ];
      for (const headers of spoofing) {
        expect((await raw(url, { path: '/posts/live', headers })).status).toBe(429);
      }
      first.destroy();
    } finally {
      await untrusting.stop();
    }
    // From the trusted loopback, the last X-Forwarded-For entry (what the nearest proxy added) counts.
    await waitFor(() => query.live.clientCount === 0);
    const spoofed = { 'x-forwarded-for': '203.0.113.9, 198.51.100.20' };
    const open = [1, 2, 3].map(() => openStream({ headers: spoofed }));
    await Promise.all(open.map((stream) => stream.response));
    const another = { 'x-forwarded-for': '203.0.113.10, 198.51.100.20' };
    expect((await raw(queryUrl, { path: '/posts/live', headers: another })).status).toBe(429);
    open.forEach((stream) => stream.close());
  });
});
