import { afterEach, describe, expect, it } from 'vitest';
import { StartError } from './errors.js';
import { ManagedProcess, type ManagedProcessOptions } from './managed-process.js';
import { freePort } from '../nats-server.js';

/** The built module, for a parent process of its own (run `npx tsc -b` first). */
const BUILT = new URL('../../dist/process/managed-process.js', import.meta.url);

/** A child that serves HTTP on PORT: `/` answers 200 once READY_MS have passed, 503 before. */
const SERVER = `
const http = require('node:http');
const started = Date.now();
console.log('hello from ' + process.env.GREETING);
if (process.env.FAIL) { console.error('cannot start'); process.exit(3); }
process.on('SIGTERM', () => {
  if (process.env.IGNORE_TERM) return console.log('ignoring SIGTERM');
  process.exit(0);
});
http.createServer((req, res) => {
  const ready = Date.now() - started >= Number(process.env.READY_MS || 0);
  res.writeHead(ready ? 200 : 503).end(ready ? 'ok' : 'not yet');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const processes: ManagedProcess[] = [];
afterEach(async () => {
  await Promise.all(processes.splice(0).map((p) => p.stop(1000)));
});

async function server(env: NodeJS.ProcessEnv = {}, options: Partial<ManagedProcessOptions> = {}) {
  const port = await freePort();
  const managed = new ManagedProcess({
    name: 'server',
    command: process.execPath,
    args: ['-e', SERVER],
    env: { ...process.env, PORT: String(port), GREETING: 'test', ...env },
    ready: `http://127.0.0.1:${port}/`,
    readyTimeoutMs: 10_000,
    ...options,
  });
  processes.push(managed);
  return { managed, url: `http://127.0.0.1:${port}/` };
}

describe('ManagedProcess', () => {
  it('starts a child, waits until its URL answers 200, and keeps its output', async () => {
    const lines: string[] = [];
    const { managed, url } = await server({ READY_MS: '300' }, { onLine: (line) => lines.push(line) });
    expect(managed.running).toBe(false);
    await managed.start();
    expect(managed.running).toBe(true);
    expect(managed.pid).toBeGreaterThan(0);
    expect((await fetch(url)).status).toBe(200);
    expect(managed.logs()).toEqual(['hello from test']);
    expect(lines).toEqual(['hello from test']);
    expect(managed.restarts).toBe(0);
  });

  it('rejects with a StartError holding the output when the child exits during start', async () => {
    const { managed } = await server({ FAIL: '1' });
    const error = await managed.start().then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(StartError);
    expect((error as StartError).message).toMatch(/server exited during start \(exit code 3\)/);
    expect((error as StartError).output).toContain('cannot start');
    expect(managed.exit).toEqual({ code: 3, signal: null });
  });

  it('rejects when not ready within the timeout, and when aborted', async () => {
    const { managed } = await server({ READY_MS: '60000' }, { readyTimeoutMs: 500 });
    await expect(managed.start()).rejects.toThrow(/server is not ready: .* did not answer 200 within 0.5 s/);
    await managed.stop();

    const abort = new AbortController();
    const { managed: aborted } = await server({ READY_MS: '60000' }, { signal: abort.signal });
    setTimeout(() => abort.abort(), 200);
    await expect(aborted.start()).rejects.toThrow('Start aborted');
  });

  it('takes a custom readiness check', async () => {
    let calls = 0;
    const { managed } = await server({}, { ready: async () => ++calls >= 3 });
    await managed.start();
    expect(calls).toBe(3);
  });

  it('takes a pattern of the line the child writes once ready', async () => {
    const { managed } = await server({ GREETING: 'the ready line' }, { ready: /hello from the ready/ });
    await managed.start();
    expect(managed.logs()).toEqual(['hello from the ready line']);
    const { managed: silent } = await server({}, { ready: /never written/, readyTimeoutMs: 500 });
    await expect(silent.start()).rejects.toThrow(/server wrote no line matching \/never written\//);
  });

  it('stops with SIGTERM, and is safe to stop twice', async () => {
    const { managed } = await server();
    await managed.start();
    const [first, second] = await Promise.all([managed.stop(), managed.stop()]);
    expect(first).toEqual({ code: 0, signal: null });
    expect(second).toEqual(first);
    expect(managed.running).toBe(false);
    expect(await managed.stop()).toBeUndefined();
  });

  it('sends SIGKILL when SIGTERM is ignored', async () => {
    const messages: string[] = [];
    const { managed } = await server({ IGNORE_TERM: '1' }, { onStatus: (m) => messages.push(m) });
    await managed.start();
    expect(await managed.stop(300)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(messages.join()).toMatch(/did not stop within 0.3 s after SIGTERM: sending SIGKILL/);
  });

  it('kills, pauses and resumes, and tells an unexpected exit from a requested one', async () => {
    const exits: [string | null, boolean][] = [];
    const { managed, url } = await server(
      {},
      { onExit: (exit, unexpected) => exits.push([exit.signal, unexpected]) },
    );
    await managed.start();
    expect(await managed.kill('SIGSTOP')).toBeUndefined();
    await expect(fetch(url, { signal: AbortSignal.timeout(300) })).rejects.toThrow();
    await managed.kill('SIGCONT');
    expect((await fetch(url)).status).toBe(200);
    expect(await managed.kill()).toEqual({ code: null, signal: 'SIGKILL' });
    expect(managed.running).toBe(false);

    await managed.start();
    process.kill(managed.pid!, 'SIGKILL');
    await managed.exited;
    await new Promise((resolve) => setImmediate(resolve));
    expect(exits).toEqual([
      ['SIGKILL', false],
      ['SIGKILL', true],
    ]);
  });

  it('restarts: stops if running, starts again, counts it', async () => {
    const { managed } = await server();
    await managed.start();
    const firstPid = managed.pid;
    await managed.restart();
    expect(managed.running).toBe(true);
    expect(managed.pid).not.toBe(firstPid);
    expect(managed.restarts).toBe(1);
    expect(managed.logs()).toEqual(['hello from test', 'hello from test']);
  });

  it('keeps only the last lines', async () => {
    const managed = new ManagedProcess({
      name: 'counter',
      command: process.execPath,
      args: ['-e', 'for (let i = 1; i <= 50; i++) console.log(i)'],
      logLines: 5,
    });
    await managed.start();
    await managed.exited;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(managed.logs()).toEqual(['46', '47', '48', '49', '50']);
  });

  it('reports a command that cannot be spawned', async () => {
    const managed = new ManagedProcess({
      name: 'missing',
      command: '/nonexistent/command',
      ready: async () => true,
    });
    await expect(managed.start()).rejects.toThrow(/missing exited during start/);
    expect(managed.logs().join()).toMatch(/spawn failed: .*ENOENT/);
  });

  it('kills its children when the parent exits without stopping them', async () => {
    const port = await freePort();
    const parent = `
      import { ManagedProcess } from ${JSON.stringify(BUILT.href)};
      const child = new ManagedProcess({ name: 'c', command: process.execPath, args: ['-e', ${JSON.stringify(SERVER)}],
        env: { ...process.env, PORT: '${port}' }, ready: 'http://127.0.0.1:${port}/' });
      await child.start();
      console.log(child.pid);
      process.exit(0);
    `;
    const runner = new ManagedProcess({
      name: 'parent',
      command: process.execPath,
      args: ['--input-type=module', '-e', parent],
    });
    await runner.start();
    expect(await runner.exited).toEqual({ code: 0, signal: null });
    expect(Number(runner.logs().at(-1))).toBeGreaterThan(0);
    // Gone, not only orphaned: nothing serves its port any more.
    await new Promise((resolve) => setTimeout(resolve, 100));
    await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
  });
});
