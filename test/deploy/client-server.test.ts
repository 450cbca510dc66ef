/**
 * client/server.mjs, the client image's server, as a real process: static files with the SPA fallback,
 * health, security headers, and JSON errors for what it does not serve.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ManagedProcess } from '@blog/common/process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/files.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'blog-client-server-'));
let server: ManagedProcess | undefined;
let base = '';
let listening: Record<string, unknown> = {};

beforeAll(async () => {
  mkdirSync(path.join(dir, 'assets'));
  writeFileSync(path.join(dir, 'index.html'), '<!doctype html><div id="root"></div>');
  writeFileSync(path.join(dir, 'assets', 'app-1234.js'), 'console.log(1)');
  server = new ManagedProcess({
    name: 'server.mjs',
    command: process.execPath,
    args: [path.join(ROOT, 'client/server.mjs')],
    env: { ...process.env, PORT: '0', STATIC_DIR: dir },
    ready: /"msg":"listening"/,
    readyTimeoutMs: 10_000,
  });
  await server.start();
  listening = JSON.parse(server.logs().find((line) => line.includes('"msg":"listening"'))!) as Record<
    string,
    unknown
  >;
  base = `http://127.0.0.1:${listening.port as number}`;
});

afterAll(async () => {
  await server?.stop();
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

  it('bounds how long a request may take to arrive, as the services do', () => {
    expect(listening).toMatchObject({
      headersTimeout: 20_000,
      requestTimeout: 30_000,
      keepAliveTimeout: 65_000,
    });
  });

  it('answers the probes', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  it('never serves a file outside its folder', async () => {
    const res = await fetch(`${base}/..%2f..%2fetc%2fpasswd`);
    expect(await res.text()).not.toContain('root:');
  });

  it('carries security headers, and answers JSON errors for what it does not serve', async () => {
    const page = await fetch(`${base}/`);
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    const post = await fetch(`${base}/posts/create`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(post.headers.get('content-type')).toContain('application/json');
    const broken = await fetch(`${base}/%E0%A4%A`);
    expect(broken.status).toBe(400);
    expect(((await broken.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain(
      'percent-encoding',
    );
  });
});
