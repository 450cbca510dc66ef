import { setTimeout as sleep } from 'node:timers/promises';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { SERVER_TIMEOUTS } from '@blog/common';
import { ManagedProcess } from '@blog/common/process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localBackends, ROUTER_TIMEOUTS, startRouter, type RouterOptions } from './router.js';
import { SECURITY_HEADERS } from './router-static.js';

/**
 * What no client and no backend may do to the router: crash it (it runs inside `npm start` and as
 * docker-compose's ingress), hold it for ever, or reach a websocket it should not. The router runs as a
 * process of its own (router/dist, so `npm run build` first), in front of real backends in this process,
 * and every case uses raw sockets; after each, the process must still be alive and routing.
 */
const ROOT_DIR = fileURLToPath(new URL('../..', import.meta.url));
const INGRESS_FILE = path.join(ROOT_DIR, 'infra', 'k8s', 'ingress-srv.yaml');
const TIMEOUTS = { headersMs: 300, requestMs: 600, backendMs: 500 };

/** The router as a child process (router/dist/router.js), started with `options`. */
async function routerProcess(options: RouterOptions) {
  const routerJs = pathToFileURL(path.join(ROOT_DIR, 'router', 'dist', 'router.js')).href;
  const code = `const { startRouter } = await import(${JSON.stringify(routerJs)});
const router = await startRouter(JSON.parse(process.env.ROUTER_OPTIONS));
process.stdout.write('listening ' + router.port + '\\n');`;
  const router = new ManagedProcess({
    name: 'router',
    command: process.execPath,
    args: ['--input-type=module', '-e', code],
    env: { ...process.env, ROUTER_OPTIONS: JSON.stringify({ host: '127.0.0.1', ...options }) },
    ready: /^listening \d+$/,
  });
  routers.push(router);
  await router.start();
  const port = Number(
    /^listening (\d+)$/.exec(router.logs().find((line) => line.startsWith('listening '))!)![1],
  );
  const output = () => router.logs().join('\n');
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    output,
    /** Still running, and still routing: a GET through it reaches a backend. */
    async expectAlive() {
      await sleep(50);
      expect(router.running, output()).toBe(true);
      const res = await fetch(`http://127.0.0.1:${port}/posts`, { signal: AbortSignal.timeout(5000) });
      expect(res.status).toBe(200);
    },
    stop: () => router.kill(),
  };
}
const routers: ManagedProcess[] = [];
afterAll(() => Promise.all(routers.map((router) => router.kill())));

/** A raw TCP client: what it sends, what came back, and whether the other side closed. */
function rawClient(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  let received = '';
  let closed = false;
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  socket.on('close', () => (closed = true));
  return {
    socket,
    received: () => received,
    closed: () => closed,
    connected: new Promise<void>((resolve) => socket.once('connect', () => resolve())),
  };
}

const upgradeRequest = (path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

async function waitFor(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await sleep(10);
  expect(condition(), what).toBe(true);
}

/** The API's stand-in: answers, hangs, resets, stalls or streams as the path asks; counts what it saw. */
async function apiBackend() {
  const seen = { upgrades: 0, requests: 0, abortedBodies: 0, streamsClosed: 0, hanging: 0 };
  const streams = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    seen.requests++;
    const url = req.url ?? '';
    if (url.startsWith('/posts/live')) {
      res.writeHead(200, { 'Content-Type': 'text/event-stream' });
      res.write('data: first\n\n');
      streams.add(res);
      res.once('close', () => (seen.streamsClosed++, streams.delete(res)));
      return;
    }
    if (url.includes('hang')) return void seen.hanging++;
    if (url.includes('reset') || url.includes('stall')) {
      res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '100' });
      res.write('partial');
      if (url.includes('reset')) setTimeout(() => req.socket.resetAndDestroy(), 20);
      return;
    }
    req.once('close', () => {
      if (!req.complete) seen.abortedBodies++;
    });
    req.resume();
    req.once('end', () => res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}'));
  });
  server.on('upgrade', (_req, socket: net.Socket) => {
    seen.upgrades++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    seen,
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    send: (text: string) => streams.forEach((res) => res.write(text)),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Vite's dev server as far as websockets go: a 101, then every byte echoed; or no answer (`hang`). */
async function devServerBackend() {
  const seen = { upgrades: 0, socketsClosed: 0 };
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => res.end('<!doctype html><title>Vite</title>'));
  server.on('upgrade', (req, socket: net.Socket) => {
    seen.upgrades++;
    socket.on('error', () => undefined);
    // The other side has closed (Node keeps an upgraded socket half open): close ours, as ws servers do.
    socket.once('end', () => socket.end());
    socket.once('close', () => (seen.socketsClosed++, sockets.delete(socket)));
    sockets.add(socket);
    if (req.url?.includes('hang')) return;
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
    socket.on('data', (chunk: Buffer) => socket.write(chunk));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    seen,
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    resetAll: () => sockets.forEach((socket) => socket.resetAndDestroy()),
    close: () => {
      sockets.forEach((socket) => socket.destroy());
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

let api: Awaited<ReturnType<typeof apiBackend>>;
let vite: Awaited<ReturnType<typeof devServerBackend>>;
let dev: Awaited<ReturnType<typeof routerProcess>>;
let built: Awaited<ReturnType<typeof routerProcess>>;
let clientDir: string;

beforeAll(async () => {
  [api, vite] = await Promise.all([apiBackend(), devServerBackend()]);
  clientDir = mkdtempSync(path.join(os.tmpdir(), 'router-sockets-'));
  mkdirSync(path.join(clientDir, 'assets'));
  writeFileSync(path.join(clientDir, 'index.html'), '<!doctype html><title>Blog</title>');
  writeFileSync(path.join(clientDir, 'assets', 'app-1.js'), 'console.log(1)');
  const urls = {
    posts: api.url,
    comments: api.url,
    query: api.url,
    moderation: api.url,
    'event-bus': api.url,
  };
  const common = { ingressFile: INGRESS_FILE, timeouts: TIMEOUTS };
  [dev, built] = await Promise.all([
    routerProcess({ ...common, backends: localBackends(urls, vite.url) }),
    routerProcess({ ...common, backends: localBackends(urls, { dir: clientDir }) }),
  ]);
});
afterAll(async () => {
  await Promise.all([dev?.stop(), built?.stop(), api?.close(), vite?.close()]);
  rmSync(clientDir, { recursive: true, force: true });
});

describe('the router, against clients that misbehave', () => {
  it('survives a client that resets its socket while an upgrade waits for its answer', async () => {
    for (const [path, upgrades] of [
      ['/?hang', () => vite.seen.upgrades],
      ['/posts', () => api.seen.upgrades],
    ] as const) {
      const before = upgrades();
      const client = rawClient(dev.port);
      await client.connected;
      client.socket.write(upgradeRequest(path));
      if (path === '/?hang') await waitFor(() => upgrades() > before, 'the dev server saw the upgrade');
      else await sleep(20);
      client.socket.resetAndDestroy();
      await dev.expectAlive();
    }
  });

  it('refuses an upgrade to an API path with 400 JSON and closes the socket: the backend never sees it', async () => {
    for (const path of ['/posts', '/posts/live', '/posts/create', '/posts/abc/comments']) {
      const client = rawClient(dev.port);
      client.socket.write(upgradeRequest(path));
      await waitFor(client.closed, `${path}: the router closed the socket`);
      expect(client.received()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(client.received()).toContain('"errors":[{"message":"No websocket here');
    }
    expect(api.seen.upgrades).toBe(0);
    await dev.expectAlive();
  });

  it('refuses every upgrade when the client is static files', async () => {
    const client = rawClient(built.port);
    client.socket.write(upgradeRequest('/'));
    await waitFor(client.closed, 'the router closed the socket');
    expect(client.received()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    await built.expectAlive();
  });

  it('passes an upgrade to the dev server both ways, and ends it when either side resets', async () => {
    for (const side of ['client', 'dev server'] as const) {
      const closedBefore = vite.seen.socketsClosed;
      const client = rawClient(dev.port);
      client.socket.write(upgradeRequest('/'));
      await waitFor(() => client.received().includes('101 Switching Protocols'), 'the 101 came back');
      client.socket.write('ping');
      await waitFor(() => client.received().endsWith('ping'), 'the bytes came back through the router');
      if (side === 'client') client.socket.resetAndDestroy();
      else vite.resetAll();
      await waitFor(
        () => vite.seen.socketsClosed > closedBefore,
        `${side} reset: the dev server's socket closed`,
      );
      if (side === 'dev server')
        await waitFor(client.closed, "the dev server reset: the client's socket closed");
      await dev.expectAlive();
    }
  });

  it('answers 504 JSON to an upgrade the dev server never answers', async () => {
    const client = rawClient(dev.port);
    client.socket.write(upgradeRequest('/?hang'));
    await waitFor(client.closed, 'the router gave up and closed the socket');
    expect(client.received()).toMatch(/^HTTP\/1\.1 504 Gateway Timeout\r\n/);
    expect(client.received()).toContain('did not answer in time');
    await dev.expectAlive();
  });

  it('answers 504 JSON when a backend accepts a request and never answers', async () => {
    const hanging = api.seen.hanging;
    const res = await fetch(`${dev.url}/posts?hang=1`, { signal: AbortSignal.timeout(10_000) });
    expect(api.seen.hanging).toBe(hanging + 1);
    expect(res.status).toBe(504);
    expect(await res.json()).toEqual({
      errors: [{ message: 'the query service (query-srv:4002) did not answer in time' }],
    });
    await dev.expectAlive();
  });

  it('keeps an event stream open past the backend timeout once its headers came, and ends it when the client goes', async () => {
    const closedBefore = api.seen.streamsClosed;
    const client = rawClient(dev.port);
    client.socket.write('GET /posts/live HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await waitFor(() => client.received().includes('data: first'), 'the first event');
    await sleep(TIMEOUTS.backendMs * 4);
    api.send('data: later\n\n');
    await waitFor(() => client.received().includes('data: later'), 'an event after four backend timeouts');
    expect(client.closed()).toBe(false);
    // The client goes away mid-stream: the backend's stream is closed too.
    client.socket.resetAndDestroy();
    await waitFor(() => api.seen.streamsClosed > closedBefore, "the backend's stream closed");
    await dev.expectAlive();
  });

  it("cuts an answer whose backend falls silent mid-body, or resets: the client's answer ends short", async () => {
    for (const path of ['/posts/abc/comments?stall=1', '/posts/abc/comments?reset=1']) {
      const client = rawClient(dev.port);
      client.socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
      await waitFor(client.closed, `${path}: the router closed the connection`);
      expect(client.received()).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\npartial$/);
      await dev.expectAlive();
    }
  });

  it("survives a client that resets while sending its body: the backend's request is cut too", async () => {
    const aborted = api.seen.abortedBodies;
    const client = rawClient(dev.port);
    client.socket.write(
      'POST /posts/create HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n' +
        'Content-Length: 1000\r\n\r\n{"title":"',
    );
    await sleep(100);
    client.socket.resetAndDestroy();
    await waitFor(() => api.seen.abortedBodies > aborted, "the backend's request was cut");
    await dev.expectAlive();
  });

  it('answers 408 JSON to a request whose headers trickle in past the timeout', async () => {
    const client = rawClient(dev.port);
    client.socket.write('GET /posts HTTP/1.1\r\nHost: localhost\r\n');
    let lines = 0;
    while (!client.closed() && lines++ < 100) {
      client.socket.write('X-Slow: 1\r\n');
      await sleep(50);
    }
    expect(lines).toBeLessThan(100);
    expect(client.received()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(client.received()).toContain('The request took too long to arrive');
    await dev.expectAlive();
  });
});

describe('the router, in-process', () => {
  it("takes the services' server timeouts by default, and ingress-nginx's 60 s for a backend", async () => {
    const { backendMs, ...server } = ROUTER_TIMEOUTS;
    expect(server).toEqual(SERVER_TIMEOUTS);
    expect(backendMs).toBe(60_000);
    const router = await startRouter({
      ingressFile: INGRESS_FILE,
      backends: localBackends(
        { posts: api.url, comments: api.url, query: api.url, moderation: api.url, 'event-bus': api.url },
        { dir: clientDir },
      ),
    });
    try {
      expect(router.server.headersTimeout).toBe(20_000);
      expect(router.server.requestTimeout).toBe(30_000);
      expect(router.server.keepAliveTimeout).toBe(65_000);
    } finally {
      await router.close();
    }
  });
});

describe("the router's own answers", () => {
  const clientServer = new ManagedProcess({
    name: 'client/server.mjs',
    command: process.execPath,
    args: [path.join(ROOT_DIR, 'client', 'server.mjs')],
    env: { ...process.env, PORT: '0', STATIC_DIR: clientDir },
    ready: /"port"/,
  });
  afterAll(() => clientServer.kill());

  it('carry the security headers client/server.mjs sends, on files and on errors', async () => {
    await clientServer.start();
    const line = clientServer.logs().find((logged) => logged.includes('"port"'))!;
    const imageServer = `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`;
    const names = Object.keys(SECURITY_HEADERS);
    const headersOf = (res: Response) =>
      Object.fromEntries(names.map((name) => [name, res.headers.get(name)]));
    const fromImage = headersOf(await fetch(`${imageServer}/`));
    expect(names.sort()).toEqual(['content-security-policy', 'referrer-policy', 'x-content-type-options']);
    for (const url of ['/', '/assets/app-1.js', '/some/page', '/assets/missing.js', '/%zz']) {
      expect(headersOf(await fetch(`${built.url}${url}`)), url).toEqual(fromImage);
    }
    const post = await fetch(`${built.url}/events`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(headersOf(post)).toEqual(fromImage);
  });
});
