import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { sleep } from '@blog/common';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus } from './app.js';

// The bus with EVENT_BUS_TOKEN set, for real: on a free port with a temporary DATA_DIR, delivering over
// HTTP to a small node:http subscriber that checks the token as ours do.

const TOKEN = 'bus-token-0123456789abcdef';
const auth = { Authorization: `Bearer ${TOKEN}` };

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A subscriber that answers 401 unless the delivery carries `accepted()`'s token, and records the rest. */
async function subscriber(accepted: () => string) {
  const received: { seq: number; type: string }[] = [];
  const refused: (string | undefined)[] = [];
  const server = http.createServer((req, res) => {
    // It takes POSTs only: asked for a socket, it answers 404 and the bus POSTs each delivery.
    if (req.method !== 'POST') return void res.writeHead(404).end();
    let raw = '';
    req.on('data', (chunk: Buffer) => (raw += chunk));
    req.on('end', () => {
      if (req.headers.authorization !== `Bearer ${accepted()}`) {
        refused.push(req.headers.authorization);
        return void res.writeHead(401, { 'WWW-Authenticate': 'Bearer' }).end('{}');
      }
      received.push(JSON.parse(raw));
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`, received, refused };
}

/** The bus with TOKEN, or with none when `open` (the course's bus). */
async function startBus(subscriberUrl: string, { open = false } = {}) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'event-bus-token-'));
  const bus = createBus({
    env: {
      PORT: '0',
      DATA_DIR: dir,
      LOG_LEVEL: 'silent',
      RETRY_MAX_MS: '20',
      SUBSCRIBERS: `sub=${subscriberUrl}`,
      EVENT_BUS_TOKEN: open ? undefined : TOKEN,
    },
  });
  const server = await bus.start();
  cleanups.push(async () => {
    await bus.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const call = (route: string, init: RequestInit = {}) => fetch(`${url}${route}`, init);
  const publish = (event: object, headers: Record<string, string> = auth) =>
    call('/events', {
      method: 'POST',
      headers: { ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify(event),
    });
  return { bus, url, call, publish };
}

async function waitFor(check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}

describe('the bus with EVENT_BUS_TOKEN', () => {
  it('refuses a publish without the token or with a wrong one: 401 JSON, nothing stored', async () => {
    const sub = await subscriber(() => TOKEN);
    const bus = await startBus(sub.url);
    const event = { type: 'PostCreated', data: { id: 'forged', title: 'forged' } };
    const withoutToken: Record<string, string>[] = [
      {},
      { Authorization: 'Bearer wrong-token-0123456789' },
      { Authorization: TOKEN },
    ];
    for (const headers of withoutToken) {
      const res = await bus.publish(event, headers);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toEqual({
        errors: [{ message: expect.stringMatching(/token/), field: 'authorization' }],
      });
    }
    expect(bus.bus.store.headSeq()).toBe(0);
    expect((await bus.publish(event)).status).toBe(200);
    expect(bus.bus.store.headSeq()).toBe(1);
  });

  it('refuses every read without it, and answers the probes and metrics to anyone', async () => {
    const sub = await subscriber(() => TOKEN);
    const bus = await startBus(sub.url);
    await bus.publish({ type: 'PostCreated', data: { id: 'p', title: 't' } });
    for (const route of ['/events', '/events?after=0&limit=5', '/subscribers', '/dead-letters']) {
      const refused = await bus.call(route);
      expect(refused.status, route).toBe(401);
      expect(refused.headers.get('x-last-seq'), route).toBeNull();
      expect(await refused.text(), route).not.toContain('"seq"');
      expect((await bus.call(route, { headers: auth })).status, route).toBe(200);
    }
    for (const route of ['/healthz', '/readyz', '/metrics']) {
      expect((await bus.call(route)).status, route).toBe(200);
    }
  });

  it('sends the token with every delivery', async () => {
    const sub = await subscriber(() => TOKEN);
    const bus = await startBus(sub.url);
    for (let i = 1; i <= 3; i++) await bus.publish({ type: 'T', data: { i } });
    await waitFor(() => sub.received.length === 3);
    expect(sub.refused).toEqual([]);
  });

  it('keeps delivering to a subscriber that refuses its token, and loses nothing once they agree', async () => {
    let subscriberToken = 'another-token-0123456789';
    const sub = await subscriber(() => subscriberToken);
    const bus = await startBus(sub.url);
    for (let i = 1; i <= 3; i++) await bus.publish({ type: 'T', data: { i } });
    await waitFor(() => sub.refused.length >= 3);
    const status = (await (await bus.call('/subscribers', { headers: auth })).json()) as {
      lastError: string;
      deadLetters: number;
    }[];
    expect(status[0]).toMatchObject({
      deadLetters: 0,
      lastError: expect.stringContaining('EVENT_BUS_TOKEN'),
    });
    subscriberToken = TOKEN;
    await waitFor(() => sub.received.length === 3);
    expect(sub.received.map((event) => event.seq)).toEqual([1, 2, 3]);
    expect(await (await bus.call('/dead-letters', { headers: auth })).json()).toEqual([]);
  });

  it('without a token: the course’s open bus, and deliveries carry no Authorization', async () => {
    const sub = await subscriber(() => 'none');
    const bus = await startBus(sub.url, { open: true });
    expect((await bus.publish({ type: 'PostCreated', data: { id: 'p', title: 't' } }, {})).status).toBe(200);
    expect((await bus.call('/events')).status).toBe(200);
    await waitFor(() => sub.refused.length >= 1);
    expect(sub.refused[0]).toBeUndefined();
  });
});
