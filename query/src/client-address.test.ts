import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { raw } from '../../test/support/raw-http.js';
import {
  clientAddress,
  DEFAULT_TRUSTED_PROXIES,
  trustedProxies,
  trustedProxiesProblems,
} from './client-address.js';
import { createQueryService } from './service.js';

/** A real server that answers with the address clientAddress finds, for the list of trusted proxies given. */
let server: http.Server;
let url: string;
let trusted = trustedProxies(DEFAULT_TRUSTED_PROXIES);

beforeAll(async () => {
  server = http.createServer((req, res) => res.end(clientAddress(req, trusted)));
  await new Promise<void>((resolve) => server.listen(0, '::', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

const addressFor = async (headers: Record<string, string>) => (await raw(url, { path: '/', headers })).body;

describe('clientAddress', () => {
  it('takes the socket address (IPv4 on an IPv6 socket as itself) when nothing is passed on', async () => {
    trusted = trustedProxies(DEFAULT_TRUSTED_PROXIES);
    expect(await addressFor({})).toBe('127.0.0.1');
  });

  it('from a trusted proxy, takes X-Real-IP, else the last X-Forwarded-For entry, if each is an address', async () => {
    trusted = trustedProxies(DEFAULT_TRUSTED_PROXIES);
    expect(await addressFor({ 'x-real-ip': '203.0.113.5' })).toBe('203.0.113.5');
    expect(await addressFor({ 'x-forwarded-for': '198.51.100.1, 203.0.113.6' })).toBe('203.0.113.6');
    expect(await addressFor({ 'x-real-ip': '2001:db8::7', 'x-forwarded-for': '203.0.113.6' })).toBe(
      '2001:db8::7',
    );
    expect(await addressFor({ 'x-real-ip': 'not-an-address' })).toBe('127.0.0.1');
  });

  it('from anyone else, believes no header', async () => {
    trusted = trustedProxies('none');
    expect(await addressFor({ 'x-real-ip': '203.0.113.5', 'x-forwarded-for': '203.0.113.6' })).toBe(
      '127.0.0.1',
    );
    trusted = trustedProxies('10.0.0.0/8');
    expect(await addressFor({ 'x-real-ip': '203.0.113.5' })).toBe('127.0.0.1');
  });
});

describe('TRUSTED_PROXIES', () => {
  it('takes addresses, ranges and none; names what it refuses', () => {
    expect(trustedProxiesProblems('none')).toEqual([]);
    expect(trustedProxiesProblems('10.244.0.0/16, 127.0.0.1,::1, fd00::/8')).toEqual([]);
    expect(trustedProxiesProblems('10.0.0.0/33,ingress,1.2.3.4/8/1')).toEqual([
      '"10.0.0.0/33": the prefix must be 0 to 32',
      '"ingress" is not an address or address/prefix',
      '"1.2.3.4/8/1" is not an address or address/prefix',
    ]);
  });

  it('stops query at start when malformed, naming it, as LIVE_MAX_PER_ADDRESS', () => {
    expect(() => createQueryService({ env: { TRUSTED_PROXIES: 'ingress-nginx' } })).toThrow(
      /TRUSTED_PROXIES="ingress-nginx": "ingress-nginx" is not an address/,
    );
    expect(() => createQueryService({ env: { LIVE_MAX_PER_ADDRESS: '0' } })).toThrow(
      /LIVE_MAX_PER_ADDRESS="0"/,
    );
  });
});
