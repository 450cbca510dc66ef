import type { Server } from 'node:http';
import net, { type AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { HttpError } from './errors.js';
import { EventSocketClient } from './event-socket-client.js';
import { closeServer, createHttpApp, drainConnections, finishHttpApp, listen } from './http.js';
import { BODY_MAX_BYTES } from './limits.js';
import { createLogger } from './logger.js';
import { createMetrics } from './metrics.js';

// The event path's socket through real servers and real sockets: the same answers as the POST, and a POST
// wherever the socket cannot be had.

const TOKEN = 'Bearer a-token-of-twenty-chars';
const servers: Server[] = [];
const clients: EventSocketClient[] = [];
afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  await Promise.all(servers.splice(0).map((server) => closeServer(server, 200)));
});

/** A server whose `POST /events` needs the token and echoes what it got; counts POSTs and upgrades. */
async function eventServer() {
  const log = createLogger('socket-test', 'silent');
  const app = createHttpApp({
    metrics: createMetrics('socket-test'),
    log,
    readiness: () => Promise.resolve({ ready: true }),
    rawRoutes: (kit) => ({
      'POST /events': kit.json(
        '/events',
        async (body, req) => {
          if ((body as { hang?: boolean }).hang) await new Promise(() => undefined);
          return {
            body: { got: body, publisher: req.headers['x-events-publisher'] },
            headers: { 'X-Events-Acked': '7' },
          };
        },
        (req) => {
          if (req.headers.authorization !== TOKEN)
            throw new HttpError(401, [{ message: 'no token', field: 'authorization' }], {
              headers: { 'WWW-Authenticate': 'Bearer' },
            });
        },
      ),
    }),
  });
  finishHttpApp(app, log);
  const server = await listen(app, 0, '127.0.0.1');
  servers.push(server);
  const counts = { posts: 0, upgrades: 0 };
  server.on('request', () => counts.posts++);
  server.on('upgrade', () => counts.upgrades++);
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`, counts };
}

const newClient = () => {
  const client = new EventSocketClient();
  clients.push(client);
  return client;
};

const post = (client: EventSocketClient, url: string, body: string, headers: Record<string, string> = {}) =>
  client.request(url, {
    method: 'POST',
    body,
    headers: { Authorization: TOKEN, ...headers },
    timeoutMs: 2000,
  });

describe("the event path's socket", () => {
  it('answers as the POST does, every request after the first on the one socket', async () => {
    const { url, counts } = await eventServer();
    const client = newClient();
    const answers = await Promise.all(
      [1, 2, 3].map((n) => post(client, url, JSON.stringify({ n }), { 'X-Events-Publisher': 'comments' })),
    );
    expect(answers.map((a) => [a.status, JSON.parse(a.body), a.headers['x-events-acked']])).toEqual(
      [1, 2, 3].map((n) => [200, { got: { n }, publisher: 'comments' }, '7']),
    );
    await post(client, url, '{"n":4}');
    expect(counts).toEqual({ posts: 0, upgrades: 1 });
    // The same request as a POST, for comparison: the same status and body.
    const plain = await newClient().request(url.replace('/events', '/events?'), {
      method: 'POST',
      body: '{"n":4}',
      headers: { Authorization: TOKEN },
      timeoutMs: 2000,
    });
    expect([plain.status, plain.headers['x-events-acked']]).toEqual([200, '7']);
  });

  it("refuses a bad body with the POST's 400, and the socket stays open", async () => {
    const { url, counts } = await eventServer();
    const client = newClient();
    const notJson = await post(client, url, '{"n":');
    expect([notJson.status, JSON.parse(notJson.body)]).toEqual([
      400,
      { errors: [{ message: 'The body is not valid JSON', field: 'body' }] },
    ]);
    const proto = await post(client, url, '{"data":{"__proto__":{"x":1}}}');
    expect(proto.status).toBe(400);
    expect(JSON.parse(proto.body).errors[0]).toMatchObject({ field: 'data.__proto__' });
    expect((await post(client, url, '{"n":1}')).status).toBe(200);
    expect(counts).toEqual({ posts: 0, upgrades: 1 });
  });

  it("without the token: the upgrade's 401 is the POST's, and the POST answers it", async () => {
    const { url, counts } = await eventServer();
    const answer = await newClient().request(url, { method: 'POST', body: '{}', timeoutMs: 2000 });
    expect([answer.status, answer.headers['www-authenticate'], JSON.parse(answer.body)]).toEqual([
      401,
      'Bearer',
      { errors: [{ message: 'no token', field: 'authorization' }] },
    ]);
    expect(counts).toEqual({ posts: 1, upgrades: 1 });
  });

  it('posts to a server that does not take the upgrade, and does not ask again for a while', async () => {
    // A course-original service: Express, with a POST /events and nothing for an upgrade.
    const app = express();
    app.post('/events', express.json(), (req, res) => void res.json({ status: 'OK', got: req.body }));
    const server = await listen(app, 0, '127.0.0.1');
    servers.push(server);
    let upgrades = 0;
    server.prependListener('request', (req) => (upgrades += req.headers.upgrade ? 1 : 0));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`;
    const client = newClient();
    for (const n of [1, 2, 3])
      expect(JSON.parse((await post(client, url, JSON.stringify({ n }))).body).got).toEqual({ n });
    expect(upgrades).toBe(1);
  });

  it('sends a body over BODY_MAX_BYTES as a POST, which answers its 413', async () => {
    const { url, counts } = await eventServer();
    const answer = await post(newClient(), url, JSON.stringify({ text: 'x'.repeat(BODY_MAX_BYTES) }));
    expect([answer.status, JSON.parse(answer.body).errors[0].message]).toEqual([
      413,
      'The body is too large',
    ]);
    expect(counts).toEqual({ posts: 1, upgrades: 0 });
  });

  it('fails an exchange left unanswered with ETIMEDOUT, and the next one opens a new socket', async () => {
    const { url, counts } = await eventServer();
    const client = newClient();
    const hung = client.request(url, {
      method: 'POST',
      body: '{"hang":true}',
      headers: { Authorization: TOKEN },
      timeoutMs: 200,
    });
    await expect(hung).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect((await post(client, url, '{"n":1}')).status).toBe(200);
    expect(counts.upgrades).toBe(2);
  });

  it('fails the exchanges in flight with ECONNRESET when the server ends its sockets', async () => {
    const { server, url } = await eventServer();
    const client = newClient();
    expect((await post(client, url, '{"n":1}')).status).toBe(200);
    const hung = post(client, url, '{"hang":true}');
    await new Promise((resolve) => setTimeout(resolve, 50));
    void closeServer(server, 0);
    await expect(hung).rejects.toMatchObject({ code: 'ECONNRESET' });
  });

  it('closes a socket that sends something other than a request (1007)', async () => {
    const { url } = await eventServer();
    const ws = new WebSocket(url.replace('http', 'ws'), { headers: { Authorization: TOKEN } });
    await new Promise((resolve) => ws.once('open', resolve));
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.send('hello');
    expect(await closed).toBe(1007);
  });

  it('a draining server closes an idle socket (1001), and the client posts on a new one', async () => {
    const { server, url, counts } = await eventServer();
    const client = newClient();
    expect((await post(client, url, '{"n":1}')).status).toBe(200);
    const ws = new WebSocket(url.replace('http', 'ws'), { headers: { Authorization: TOKEN } });
    await new Promise((resolve) => ws.once('open', resolve));
    const closed = new Promise((resolve) => ws.once('close', resolve));
    drainConnections(server);
    expect(await closed).toBe(1001);
    // No new socket while it drains: a 503, and the client POSTs.
    const refused = new WebSocket(url.replace('http', 'ws'), { headers: { Authorization: TOKEN } });
    refused.on('error', () => undefined); // ending it while it opens is an error of its own
    const status = await new Promise((resolve) =>
      refused.once('unexpected-response', (_req, res) => resolve(res.statusCode)),
    );
    refused.terminate();
    expect(status).toBe(503);
    // The client's own socket closed too: its next request is a POST (no new socket on a draining server).
    expect((await post(client, url, '{"n":2}')).status).toBe(200);
    expect(counts.posts).toBe(1);
  });

  it('ends a socket whose server falls silent without closing it, before the exchange times out', async () => {
    const { url } = await eventServer();
    // A TCP relay that can go silent both ways, as a lost node or a dropped connection-tracking entry does.
    const relay = { silent: false };
    const proxy = net.createServer((inbound) => {
      const outbound = net.connect(Number(new URL(url).port), '127.0.0.1');
      inbound.on('data', (chunk) => void (relay.silent || outbound.write(chunk)));
      outbound.on('data', (chunk) => void (relay.silent || inbound.write(chunk)));
      inbound.on('close', () => outbound.destroy());
      outbound.on('close', () => inbound.destroy());
      inbound.on('error', () => outbound.destroy());
      outbound.on('error', () => inbound.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const client = new EventSocketClient({ pingMs: 100 });
    clients.push(client);
    try {
      const proxied = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}/events`;
      const answer = (timeoutMs: number) =>
        client.request(proxied, {
          method: 'POST',
          body: '{"n":1}',
          headers: { Authorization: TOKEN },
          timeoutMs,
        });
      expect((await answer(5000)).status).toBe(200);
      relay.silent = true;
      // Unanswered: the pings go unheard, and the socket is ended (ECONNRESET), not left to time out.
      await expect(answer(30_000)).rejects.toMatchObject({ code: 'ECONNRESET' });
      relay.silent = false;
      expect((await answer(5000)).status).toBe(200);
    } finally {
      proxy.close();
    }
  });
});
