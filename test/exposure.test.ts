import net from 'node:net';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_NAMES } from '../scripts/src/process/names.js';
import { startSystem } from '../scripts/src/process/system.js';
import type { System } from '../scripts/src/process/system-types.js';
import { runScript } from './support/scripts.js';

/**
 * Who can reach what `npm start` runs: the five services and the router listen on 127.0.0.1 only, so
 * another machine on the network reaches none of them; `router.host` (npm start's `--host`) opens the
 * router, and the router alone, on another address. Checked with real connections to this machine's own
 * address on its network interface, which is what another machine would connect to.
 */

/** This machine's first address on a real (non-loopback) IPv4 interface, if it has one. */
const lanAddress = Object.values(os.networkInterfaces())
  .flat()
  .find((address) => address && address.family === 'IPv4' && !address.internal)?.address;

/** 'open', or the error code of a TCP connection to host:port (ECONNREFUSED when nothing listens there). */
function connect(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(5000, () => {
      socket.destroy();
      resolve('timeout');
    });
    socket.once('connect', () => {
      socket.destroy();
      resolve('open');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

if (!lanAddress) console.warn('exposure tests skipped: this machine has no non-loopback IPv4 address');

describe.skipIf(!lanAddress)(`what another machine reaches (this one at ${lanAddress})`, () => {
  let system: System;
  let exposed: System;

  beforeAll(async () => {
    [system, exposed] = await Promise.all([
      startSystem({ quiet: true, env: { LOG_LEVEL: 'warn' }, router: true }),
      startSystem({ quiet: true, env: { LOG_LEVEL: 'warn' }, router: { host: '0.0.0.0' } }),
    ]);
  });
  afterAll(() => Promise.all([system?.stop(), exposed?.stop()]));

  it('by default: nothing, while 127.0.0.1 reaches every service and the router', async () => {
    const ports = { ...system.ports, router: system.router!.port };
    const fromLan = Object.fromEntries(
      await Promise.all(
        Object.entries(ports).map(async ([name, port]) => [name, await connect(lanAddress!, port)]),
      ),
    );
    const local = Object.fromEntries(
      await Promise.all(
        Object.entries(ports).map(async ([name, port]) => [name, await connect('127.0.0.1', port)]),
      ),
    );
    expect(fromLan).toEqual(Object.fromEntries(Object.keys(ports).map((name) => [name, 'ECONNREFUSED'])));
    expect(local).toEqual(Object.fromEntries(Object.keys(ports).map((name) => [name, 'open'])));
  });

  it('with the router exposed: the app and its API through the router, still no service directly', async () => {
    for (const name of SERVICE_NAMES) {
      expect(await connect(lanAddress!, exposed.ports[name]), name).toBe('ECONNREFUSED');
    }
    const app = `http://${lanAddress}:${exposed.router!.port}`;
    const page = await fetch(`${app}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<div id="root">');
    const created = await fetch(`${app}/posts/create`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"title":"from the network"}',
    });
    expect(created.status).toBe(201);
    // The bus's routes are not among the Ingress's paths: the router sends them to the client.
    const events = await fetch(`${app}/events`);
    expect(await events.text()).not.toContain('from the network');
  });
});

describe('npm start --host', () => {
  it('is in --help', async () => {
    const help = await runScript('start', ['--help'], { timeoutMs: 20_000 });
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--host ADDRESS/);
  });

  it('refuses a value that is not an IP address, naming the option', async () => {
    const run = await runScript('start', ['--host', 'the-lan'], { timeoutMs: 20_000 });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('--host must be an IP address');
  });
});
