import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { waitForNats } from '@blog/common/nats-server';
import { StartError } from '@blog/common/process';
import { natsAvailability } from '@blog/common/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_NAMES, SUBSCRIBER_NAMES, transportOptions } from './names.js';
import { freePorts, isPortFree } from './ports.js';
import { startSystem } from './system.js';
import type { System } from './system-types.js';

/**
 * startSystem against stand-in services (a few lines of node:http each), so the process handling is tested
 * without the real services: ports, environment, readiness, crashes, restarts and stopping.
 */
const FAKE_SERVICE = `
import http from 'node:http';
import path from 'node:path';
const name = path.basename(process.cwd());
const log = (msg, extra = {}) =>
  console.log(JSON.stringify({ level: 30, time: new Date().toISOString(), service: name, msg, ...extra }));
if (process.env.FAKE_FAIL === name) {
  console.error('boom: ' + name + ' cannot start');
  process.exit(3);
}
let ready = false;
setTimeout(() => (ready = true), Number(process.env.FAKE_READY_MS ?? 0));
const server = http.createServer((req, res) => {
  if (req.url === '/readyz') {
    res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({ ready }));
  }
  if (req.url === '/env') {
    const { PORT, EVENT_BUS_URL, SUBSCRIBERS, DATA_DIR, EXTRA, EVENT_TRANSPORT, NATS_URL, NATS_STREAM } = process.env;
    const { HOST, EVENT_BUS_TOKEN, HOSTNAME, NATS_REPLICAS } = process.env;
    res.writeHead(200, { 'content-type': 'application/json' });
    return res.end(JSON.stringify({
      name, pid: process.pid, PORT, EVENT_BUS_URL, SUBSCRIBERS, DATA_DIR, EXTRA, EVENT_TRANSPORT, NATS_URL, NATS_STREAM,
      HOST, EVENT_BUS_TOKEN, HOSTNAME, NATS_REPLICAS,
    }));
  }
  if (req.url === '/crash') {
    res.end();
    return setTimeout(() => process.exit(7), 10);
  }
  res.writeHead(404).end();
});
server.listen(Number(process.env.PORT), '::', () => log(name + ' listening', { seq: 1 }));
process.on('SIGTERM', () => {
  if (process.env.FAKE_IGNORE_TERM === name) return log('ignoring SIGTERM');
  log('stopping');
  server.close(() => process.exit(0));
  server.closeAllConnections();
});
`;

let rootDir: string;
const quiet = { quiet: true, onStatus: () => undefined } as const;

beforeAll(() => {
  rootDir = mkdtempSync(path.join(os.tmpdir(), 'blog-fake-root-'));
  for (const name of SERVICE_NAMES) {
    mkdirSync(path.join(rootDir, name, 'dist'), { recursive: true });
    writeFileSync(path.join(rootDir, name, 'dist', 'index.js'), FAKE_SERVICE);
  }
  writeFileSync(path.join(rootDir, 'package.json'), '{"type": "module"}');
});

afterAll(() => rmSync(rootDir, { recursive: true, force: true }));

async function env(system: System, name: (typeof SERVICE_NAMES)[number]): Promise<Record<string, string>> {
  return envAt(system.urls[name]);
}

async function envAt(url: string): Promise<Record<string, string>> {
  const response = await fetch(`${url}/env`);
  return (await response.json()) as Record<string, string>;
}

describe('startSystem', () => {
  it('starts every service on free ports with its configuration, and stops them all', async () => {
    const statuses: string[] = [];
    const system = await startSystem({
      rootDir,
      quiet: true,
      env: { EXTRA: 'for all' },
      onStatus: (m) => statuses.push(m),
    });
    try {
      const ports = Object.values(system.ports);
      expect(new Set(ports).size).toBe(5);
      const bus = await env(system, 'event-bus');
      expect(bus.DATA_DIR).toBe(system.dataDir);
      expect(bus.SUBSCRIBERS).toBe(
        ['posts', 'comments', 'query', 'moderation']
          .map((name) => `${name}=http://localhost:${system.ports[name as 'posts']}/events`)
          .join(','),
      );
      const posts = await env(system, 'posts');
      expect(posts).toMatchObject({
        PORT: String(system.ports.posts),
        EVENT_TRANSPORT: 'http',
        EVENT_BUS_URL: `http://localhost:${system.ports['event-bus']}`,
        EXTRA: 'for all',
      });
      expect(posts.NATS_URL).toBeUndefined();
      expect(system.nats).toBeUndefined();
      await expect(system.kill('nats')).rejects.toThrow('There is no nats-server');
      await expect(system.addReplica('query')).rejects.toThrow('One more replica needs transport nats');
      expect(system.logs('posts')[0]).toContain('posts listening');
      expect(system.status().every((s) => s.running)).toBe(true);
    } finally {
      await system.stop();
    }
    expect(system.status().some((s) => s.running)).toBe(false);
    for (const port of Object.values(system.ports)) expect(await isPortFree(port)).toBe(true);
    expect(statuses).toEqual([]);
  });

  it('gives every service HOST=127.0.0.1, and the token it is given, never one set in the shell', async () => {
    const shell = process.env.EVENT_BUS_TOKEN;
    process.env.EVENT_BUS_TOKEN = 'exported-in-the-shell-0123456789';
    try {
      const open = await startSystem({ rootDir, ...quiet });
      try {
        for (const name of SERVICE_NAMES) {
          expect(await env(open, name), name).toMatchObject({ HOST: '127.0.0.1', EVENT_BUS_TOKEN: '' });
        }
      } finally {
        await open.stop();
      }
      const token = 'given-to-start-system-0123456789';
      const closed = await startSystem({ rootDir, ...quiet, eventBusToken: token });
      try {
        for (const name of SERVICE_NAMES) expect((await env(closed, name)).EVENT_BUS_TOKEN, name).toBe(token);
      } finally {
        await closed.stop();
      }
      await expect(startSystem({ rootDir, ...quiet, eventBusToken: 'short' })).rejects.toThrow(
        /EVENT_BUS_TOKEN \(value not shown\) must be at least 16 characters/,
      );
    } finally {
      if (shell === undefined) delete process.env.EVENT_BUS_TOKEN;
      else process.env.EVENT_BUS_TOKEN = shell;
    }
  });

  it('kills one service, which stays down until restart brings it back on the same port', async () => {
    const system = await startSystem({ rootDir, ...quiet });
    try {
      const before = await env(system, 'query');
      expect(await system.kill('query')).toEqual({ code: null, signal: 'SIGKILL' });
      await expect(fetch(`${system.urls.query}/env`)).rejects.toThrow();
      await system.restart('query');
      const after = await env(system, 'query');
      expect(after.PORT).toBe(before.PORT);
      expect(after.pid).not.toBe(before.pid);
      expect(system.status().find((s) => s.name === 'query')).toMatchObject({ running: true, restarts: 1 });
    } finally {
      await system.stop();
    }
  });

  it('restarts a service that dies on its own after about a second when autoRestart is on', async () => {
    const statuses: string[] = [];
    const system = await startSystem({
      rootDir,
      quiet: true,
      autoRestart: true,
      onStatus: (m) => statuses.push(m),
    });
    try {
      const before = await env(system, 'comments');
      await fetch(`${system.urls.comments}/crash`);
      await expect
        .poll(() => statuses.join('\n'), { timeout: 5000 })
        .toContain('comments exited unexpectedly');
      await expect.poll(() => statuses.join('\n'), { timeout: 15_000 }).toContain('comments is ready again');
      expect((await env(system, 'comments')).pid).not.toBe(before.pid);
    } finally {
      await system.stop();
    }
  });

  it('fails as soon as a service exits during start, with its output', async () => {
    // The message says why it failed: the exit, not the readiness timeout.
    const error = await startSystem({ rootDir, ...quiet, env: { FAKE_FAIL: 'moderation' } }).catch((e) => e);
    expect(error).toBeInstanceOf(StartError);
    expect(error.message).toContain('moderation exited during start (exit code 3)');
    expect(error.message).toContain('boom: moderation cannot start');
  });

  it('fails before spawning anything when a fixed port is taken', async () => {
    const [port] = await freePorts(1);
    const blocker = net.createServer().listen(port!, '127.0.0.1');
    await new Promise((resolve) => blocker.once('listening', resolve));
    try {
      const error = await startSystem({ rootDir, ...quiet, ports: { posts: port! } }).catch((e) => e);
      expect(error).toBeInstanceOf(StartError);
      expect(error.message).toContain(`Port already in use: ${port} (posts)`);
    } finally {
      blocker.close();
    }
  });

  it('times out a service that never gets ready', async () => {
    const error = await startSystem({
      rootDir,
      ...quiet,
      readyTimeoutMs: 1500,
      serviceEnv: { 'event-bus': { FAKE_READY_MS: '60000' } },
    }).catch((e) => e);
    expect(error).toBeInstanceOf(StartError);
    // The last answer is 503 (not ready), or ECONNREFUSED on a machine too busy to start node in 1.5 s.
    expect(error.message).toMatch(
      /event-bus is not ready: .*readyz did not answer 200 within 1.5 s \(last: (503 \{"ready":false\}|ECONNREFUSED)\)/,
    );
  });

  it('sends SIGKILL to a service that ignores SIGTERM for longer than stopTimeoutMs', async () => {
    const system = await startSystem({
      rootDir,
      ...quiet,
      stopTimeoutMs: 300,
      env: { FAKE_IGNORE_TERM: 'posts' },
    });
    await system.stop();
    expect(system.status().some((s) => s.running)).toBe(false);
  });

  it('stops what it started when the start is aborted', async () => {
    const abort = new AbortController();
    const starting = startSystem({
      rootDir,
      ...quiet,
      signal: abort.signal,
      serviceEnv: { query: { FAKE_READY_MS: '60000' } },
    });
    setTimeout(() => abort.abort(), 500);
    await expect(starting).rejects.toThrow('Start aborted');
  });

  it('refuses replicas and a cluster where they cannot work', async () => {
    await expect(startSystem({ rootDir, ...quiet, replicas: 2 })).rejects.toThrow(
      'More than one replica needs transport nats',
    );
    await expect(startSystem({ rootDir, ...quiet, transport: 'nats', replicas: 0 })).rejects.toThrow(
      'replicas must be a whole number, 1 or more',
    );
    await expect(
      startSystem({ rootDir, ...quiet, transport: 'nats', natsUrl: 'nats://127.0.0.1:1', natsNodes: 3 }),
    ).rejects.toThrow('natsNodes is the nats-servers startSystem runs');
  });

  it('refuses to start services that are not built', async () => {
    await expect(startSystem({ rootDir: os.tmpdir(), ...quiet })).rejects.toThrow(
      /Not built: .*npm run build/,
    );
  });
});

describe('transportOptions (--transport, EVENT_TRANSPORT, NATS_URL, NATS_STREAM)', () => {
  it('takes the flag, else EVENT_TRANSPORT, else http', () => {
    expect(transportOptions(undefined, {})).toEqual({ transport: 'http' });
    expect(transportOptions(undefined, { EVENT_TRANSPORT: 'nats' })).toEqual({
      transport: 'nats',
      natsUrl: undefined,
      natsStream: undefined,
    });
    expect(transportOptions('http', { EVENT_TRANSPORT: 'nats', NATS_URL: 'nats://x:4222' })).toEqual({
      transport: 'http',
    });
    expect(transportOptions('nats', { NATS_URL: 'nats://x:4222', NATS_STREAM: 'mine' })).toEqual({
      transport: 'nats',
      natsUrl: 'nats://x:4222',
      natsStream: 'mine',
    });
    expect(() => transportOptions('kafka', {})).toThrow('"http" or "nats", not "kafka"');
  });
});

// These kill and restart the nats-server startSystem runs: they need the binary (natsAvailability prints why not).
const ownNats = natsAvailability({ needs: 'binary' });

describe.skipIf(ownNats.skip)(
  `startSystem with transport nats${ownNats.skip ? ` (${ownNats.reason})` : ''}`,
  () => {
    it('runs its own nats-server first, hands every service its URL and stream, and can kill and restart it', async () => {
      const system = await startSystem({ rootDir, ...quiet, transport: 'nats' });
      const url = system.nats?.url ?? '';
      try {
        expect(system.nats).toEqual({
          url: expect.stringMatching(/^nats:\/\/127\.0\.0\.1:\d+$/),
          stream: 'blog',
          ours: true,
          nodes: ['nats'],
        });
        for (const name of SERVICE_NAMES) {
          expect(await env(system, name), name).toMatchObject({
            EVENT_TRANSPORT: 'nats',
            NATS_URL: url,
            NATS_STREAM: 'blog',
          });
        }
        expect(
          existsSync(path.join(system.dataDir, 'nats', 'jetstream')),
          'JetStream store in <dataDir>/nats',
        ).toBe(true);
        expect(system.status().map((s) => s.name)).toEqual(['nats', ...SERVICE_NAMES]);

        expect(await system.kill('nats')).toEqual({ code: null, signal: 'SIGKILL' });
        await expect(waitForNats(url, { timeoutMs: 300 })).rejects.toThrow('did not greet a client');
        await system.restart('nats');
        await waitForNats(url, { timeoutMs: 1000 });
        expect(system.status().find((s) => s.name === 'nats')).toMatchObject({ running: true, restarts: 1 });
      } finally {
        await system.stop();
      }
      expect(system.status().some((s) => s.running)).toBe(false);
      expect(await isPortFree(Number(new URL(url).port))).toBe(true);
    });

    it('runs replicas of each subscriber on a cluster, kills and restarts each, and adds one', async () => {
      const system = await startSystem({ rootDir, ...quiet, transport: 'nats', replicas: 2, natsNodes: 3 });
      const pids: number[] = [];
      try {
        const nodes = system.nats!.url.split(',');
        expect(nodes).toHaveLength(3);
        expect(system.nats).toMatchObject({
          stream: 'blog',
          ours: true,
          nodes: ['nats-0', 'nats-1', 'nats-2'],
        });
        const ports = new Set<number>();
        for (const service of SUBSCRIBER_NAMES) {
          const replicas = system.replicas[service];
          expect(replicas.map((r) => r.name)).toEqual([`${service}-0`, `${service}-1`]);
          expect(replicas[0]!.url).toBe(system.urls[service]);
          for (const { name, url, port } of replicas) {
            ports.add(port);
            expect(await envAt(url), name).toMatchObject({
              PORT: String(port),
              HOSTNAME: name,
              NATS_URL: system.nats!.url,
              NATS_REPLICAS: '3',
            });
          }
        }
        expect(ports.size).toBe(8);
        expect((await env(system, 'event-bus')).HOSTNAME).not.toBe('event-bus-0');
        expect(system.status().map((s) => s.name)).toEqual([
          ...['nats-0', 'nats-1', 'nats-2', 'event-bus'],
          ...SUBSCRIBER_NAMES.flatMap((service) => [`${service}-0`, `${service}-1`]),
        ]);
        pids.push(...system.status().map((s) => s.pid!));

        await system.kill('nats-1');
        await expect(waitForNats(nodes[1]!, { timeoutMs: 300 })).rejects.toThrow('did not greet a client');
        await system.restart('nats-1');
        await system.waitReady('nats-1', 5000);
        await system.kill('query-1');
        expect(system.status().find((s) => s.name === 'query-1')?.running).toBe(false);
        expect((await envAt(system.urls.query)).HOSTNAME).toBe('query-0'); // the other one still answers
        await system.restart('query-1');
        expect(
          system
            .status()
            .filter((s) => s.restarts === 1)
            .map((s) => s.name),
        ).toEqual(['nats-1', 'query-1']);

        const added = await system.addReplica('query');
        expect(added.name).toBe('query-2');
        expect(await envAt(added.url)).toMatchObject({ HOSTNAME: 'query-2', NATS_URL: system.nats!.url });
        expect(system.replicas.query.map((r) => r.name)).toEqual(['query-0', 'query-1', 'query-2']);
        pids.push(system.status().find((s) => s.name === 'query-2')!.pid!);
      } finally {
        await system.stop();
      }
      expect(system.status().some((s) => s.running)).toBe(false);
      for (const pid of pids) expect(() => process.kill(pid, 0), `pid ${pid}`).toThrow();
    });

    it('uses a server given by natsUrl as it is, in a stream of its own, and will not kill it', async () => {
      const owner = await startSystem({ rootDir, ...quiet, transport: 'nats' });
      try {
        const guest = await startSystem({ rootDir, ...quiet, transport: 'nats', natsUrl: owner.nats!.url });
        try {
          expect(guest.nats).toEqual({
            url: owner.nats!.url,
            stream: expect.stringMatching(/^blog_[0-9a-f]{12}$/),
            ours: false,
            nodes: [],
          });
          expect(await env(guest, 'query')).toMatchObject({
            NATS_URL: owner.nats!.url,
            NATS_STREAM: guest.nats!.stream,
          });
          await expect(guest.kill('nats')).rejects.toThrow('was not started by startSystem');
          expect(guest.status().map((s) => s.name)).toEqual([...SERVICE_NAMES]);
        } finally {
          await guest.stop();
        }
        await waitForNats(owner.nats!.url, { timeoutMs: 1000 }); // still there
      } finally {
        await owner.stop();
      }
    });
  },
);
