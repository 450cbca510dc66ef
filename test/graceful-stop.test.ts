import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { HttpClient } from '@blog/common';
import type { ManagedProcess } from '@blog/common/process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../scripts/src/process/ports.js';
import { blogProcess } from './support/blog-process.js';
import { settlesBefore, waitFor } from './support/wait-for.js';

/**
 * What a service and the bus do on SIGTERM, as real processes: `/readyz` answers 503 at once, they serve on
 * for SHUTDOWN_DELAY_MS with every answer closing its connection, a second signal cuts that short without
 * losing what was acknowledged, live streams end, and the process exits 0.
 */

/** Far longer than the test waits: whatever ends the delay here is the second signal, not the time. */
const LONG_DELAY_MS = 600_000;

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'graceful-stop-'));
const api = new HttpClient();
const processes: ManagedProcess[] = [];
let urls: { bus: string; posts: string; query: string };

let bus: ManagedProcess;
let posts: ManagedProcess;
let query: ManagedProcess;

/** A process of the blog on the HTTP bus, kept to be stopped at the end. */
function start(dir: string, port: number, env: NodeJS.ProcessEnv): ManagedProcess {
  const child = blogProcess(dir, port, { EVENT_TRANSPORT: 'http', LOG_LEVEL: 'warn', ...env }).process;
  processes.push(child);
  return child;
}

beforeAll(async () => {
  const [busPort, postsPort, queryPort] = (await freePorts(3)) as [number, number, number];
  urls = {
    bus: `http://127.0.0.1:${busPort}`,
    posts: `http://127.0.0.1:${postsPort}`,
    query: `http://127.0.0.1:${queryPort}`,
  };
  bus = start('event-bus', busPort, {
    DATA_DIR: dataDir,
    SUBSCRIBERS: `posts=${urls.posts}/events,query=${urls.query}/events`,
    SHUTDOWN_DELAY_MS: String(LONG_DELAY_MS),
  });
  posts = start('posts', postsPort, { EVENT_BUS_URL: urls.bus, SHUTDOWN_DELAY_MS: String(LONG_DELAY_MS) });
  query = start('query', queryPort, { EVENT_BUS_URL: urls.bus });
  await bus.start();
  await Promise.all([posts.start(), query.start()]);
});

afterAll(async () => {
  api.close();
  await Promise.all(processes.map((child) => child.stop()));
  rmSync(dataDir, { recursive: true, force: true });
});

const readiness = async (url: string) => {
  const answer = await api.request(`${url}/readyz`, { method: 'GET', timeoutMs: 5000 });
  return { status: answer.status, body: JSON.parse(answer.body) as unknown };
};

describe('a stop on SIGTERM', () => {
  it('turns /readyz 503 at once, serves on with Connection: close, and a second signal ends it, keeping what it acknowledged', async () => {
    expect(await readiness(urls.posts)).toEqual({ status: 200, body: { ready: true } });
    const exited = posts.kill('SIGTERM');
    await waitFor(async () => (await readiness(urls.posts)).status === 503);
    expect(await readiness(urls.posts)).toEqual({
      status: 503,
      body: { ready: false, reason: 'shutting down' },
    });

    // Still serving, each answer telling the client to take its next request elsewhere.
    const created = await api.request(`${urls.posts}/posts/create`, {
      method: 'POST',
      body: JSON.stringify({ title: 'written while stopping' }),
      timeoutMs: 10_000,
    });
    expect(created.status).toBe(201);
    expect(created.headers.connection).toBe('close');
    const { id } = JSON.parse(created.body) as { id: string };

    // The second signal cuts the delay short; the process finishes and exits 0.
    void posts.kill('SIGTERM');
    expect(await settlesBefore(exited, LONG_DELAY_MS / 10, 'the exit after a second SIGTERM')).toEqual({
      code: 0,
      signal: null,
    });
    const log = await api.request(`${urls.bus}/events`, { method: 'GET', timeoutMs: 10_000 });
    expect(JSON.parse(log.body)).toContainEqual(
      expect.objectContaining({ type: 'PostCreated', data: { id, title: 'written while stopping' } }),
    );
  });

  it('ends the live streams, so they do not hold the stop', async () => {
    let opened: () => void;
    const snapshot = new Promise<void>((resolve) => (opened = resolve));
    const ended = new Promise<number | undefined>((resolve, reject) => {
      http
        .get(`${urls.query}/posts/live`, (res) => {
          res.once('data', () => opened());
          res.once('end', () => resolve(res.statusCode));
          res.once('error', reject);
          res.resume();
        })
        .once('error', reject);
    });
    await snapshot;
    const exit = await query.kill('SIGTERM');
    expect(await ended).toBe(200);
    expect(exit).toEqual({ code: 0, signal: null });
  });

  it('does the same in the bus', async () => {
    const exited = bus.kill('SIGTERM');
    await waitFor(async () => (await readiness(urls.bus)).status === 503);
    expect(await readiness(urls.bus)).toEqual({
      status: 503,
      body: { ready: false, reason: 'shutting down' },
    });
    void bus.kill('SIGINT');
    expect(await settlesBefore(exited, LONG_DELAY_MS / 10, 'the exit after SIGINT')).toEqual({
      code: 0,
      signal: null,
    });
  });
});
