import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpClient } from './http-client.js';
import { listen } from './http.js';

// Where a service listens, through real sockets: every interface without HOST, only HOST's with it.

const client = new HttpClient();
const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

const hasIpv6Loopback = Object.values(os.networkInterfaces())
  .flat()
  .some((address) => address?.address === '::1');

const start = async (host?: string) => {
  const app = express();
  app.get('/where', (_req, res) => void res.json({ ok: true }));
  const server = await listen(app, 0, host);
  servers.push(server);
  return (server.address() as AddressInfo).port;
};

const answers = async (url: string) =>
  (await client.request(url, { method: 'GET', timeoutMs: 5000 }).catch(() => undefined))?.status;

describe('listen', () => {
  it('without a host, answers on IPv4 and on IPv6 where the machine has it', async () => {
    const port = await start();
    expect(await answers(`http://127.0.0.1:${port}/where`)).toBe(200);
    if (hasIpv6Loopback) expect(await answers(`http://[::1]:${port}/where`)).toBe(200);
  });

  it('with a host, on that address only', async () => {
    const port = await start('127.0.0.1');
    expect(await answers(`http://127.0.0.1:${port}/where`)).toBe(200);
    if (hasIpv6Loopback) expect(await answers(`http://[::1]:${port}/where`)).toBeUndefined();
  });
});
