/**
 * client/server.mjs, the client image's server, as a real process: static files with the SPA fallback,
 * health, and (with ROUTES, as docker-compose.yml's `ingress` runs it) forwarding by the Ingress's rules.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/files.js';
import { INGRESS_PATHS } from './support/checks.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'blog-client-server-'));
let upstreams: http.Server[] = [];
let child: ChildProcess | undefined;
let base = '';

/** An upstream that answers with who it is and what it got. */
async function upstream(name: string): Promise<{ server: http.Server; url: string }> {
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      res.writeHead(201, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ name, method: req.method, url: req.url, body }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  upstreams.push(server);
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

beforeAll(async () => {
  mkdirSync(path.join(dir, 'assets'));
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><div id="root"></div>');
  writeFileSync(path.join(dir, 'assets', 'app-1234.js'), 'console.log(1)');
  const byService = new Map<string, string>();
  for (const { service } of INGRESS_PATHS) {
    if (service !== 'client-srv') byService.set(service, (await upstream(service)).url);
  }
  // The Ingress's rules but the catch-all, pointed at the fake upstreams: the rest is served statically.
  const routes = INGRESS_PATHS.filter((r) => r.service !== 'client-srv')
    .map((r) => `${r.path}=${byService.get(r.service)}`)
    .concat('/down=http://127.0.0.1:9')
    .join(',');
  child = spawn(process.execPath, [path.join(ROOT, 'client/server.mjs')], {
    env: { ...process.env, PORT: '0', STATIC_DIR: dir, ROUTES: routes },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    child!.stdout!.once('data', (chunk: Buffer) => resolve(chunk.toString()));
    child!.once('exit', (code) => reject(new Error(`server.mjs exited with ${code}`)));
  });
  base = `http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`;
});

afterAll(async () => {
  child?.kill('SIGTERM');
  if (child && child.exitCode === null) await new Promise((resolve) => child!.once('exit', resolve));
  await Promise.all(upstreams.map((s) => new Promise((resolve) => s.close(resolve))));
  upstreams = [];
  rmSync(dir, { recursive: true, force: true });
});

describe('client/server.mjs', () => {
  it('serves the app, its hashed assets for a year, and index.html for client-side routes', async () => {
    const index = await fetch(`${base}/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(await index.text()).toContain('id="root"');
    const asset = await fetch(`${base}/assets/app-1234.js`);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toContain('immutable');
    const route = await fetch(`${base}/some/page`);
    expect(route.status).toBe(200);
    expect(await route.text()).toContain('id="root"');
  });

  it('answers the probes', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  it('never serves a file outside its folder', async () => {
    const res = await fetch(`${base}/..%2f..%2fetc%2fpasswd`);
    expect(await res.text()).not.toContain('root:');
  });

  it('forwards as the Ingress does: the longest matching path wins, method and body intact', async () => {
    const create = await fetch(`${base}/posts/create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"title":"t"}',
    });
    expect(create.status).toBe(201);
    expect(await create.json()).toEqual({
      name: 'posts-clusterip-srv',
      method: 'POST',
      url: '/posts/create',
      body: '{"title":"t"}',
    });
    const comments = (await (await fetch(`${base}/posts/abc123/comments`, { method: 'POST' })).json()) as {
      name: string;
    };
    expect(comments.name).toBe('comments-srv');
    const list = (await (await fetch(`${base}/posts?x=1`)).json()) as { name: string; url: string };
    expect(list).toMatchObject({ name: 'query-srv', url: '/posts?x=1' });
  });

  it('answers 502 with a JSON error when the backend is down', async () => {
    const res = await fetch(`${base}/down`);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain(
      'not reachable',
    );
  });
});
