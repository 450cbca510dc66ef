import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ConfigError, readConfig, transportConfig } from './config.js';
import { HttpError } from './errors.js';
import { bearerHeader, isInternalHost, TokenCheck } from './token.js';

const TOKEN = 'b2f1c0de9a8e7d6c5b4a3f2e1d0c9b8a';
const request = (authorization?: string, host?: string) =>
  ({
    headers: { ...(authorization === undefined ? {} : { authorization }), ...(host ? { host } : {}) },
  }) as IncomingMessage;

/** The 401 `check` throws for a request, or undefined when it passes. */
function refusal(check: TokenCheck, authorization?: string, host?: string): HttpError | undefined {
  try {
    check.check(request(authorization, host));
    return undefined;
  } catch (err) {
    if (err instanceof HttpError) return err;
    throw err;
  }
}

describe('TokenCheck', () => {
  it('lets everything through when no token is set (the course’s open bus)', () => {
    const open = new TokenCheck(undefined);
    expect(open.required).toBe(false);
    expect(refusal(open)).toBeUndefined();
    expect(refusal(open, 'Bearer anything')).toBeUndefined();
  });

  it('passes the request that carries the token, whatever the case of the scheme', () => {
    const check = new TokenCheck(TOKEN);
    expect(refusal(check, `Bearer ${TOKEN}`)).toBeUndefined();
    expect(refusal(check, `bearer ${TOKEN}`)).toBeUndefined();
  });

  it.each([
    ['no Authorization header', undefined, 'This route needs the event bus token'],
    ['another scheme', `Basic ${TOKEN}`, 'This route needs the event bus token'],
    ['an empty bearer', 'Bearer ', 'This route needs the event bus token'],
    ['a wrong token of the same length', `Bearer ${'x'.repeat(TOKEN.length)}`, 'not the right one'],
    ['a prefix of the token', `Bearer ${TOKEN.slice(0, 16)}`, 'not the right one'],
    ['the token and more', `Bearer ${TOKEN}x`, 'not the right one'],
    ['a very long value', `Bearer ${'y'.repeat(5000)}`, 'not the right one'],
  ])('refuses %s with 401, WWW-Authenticate: Bearer, and no token in the message', (_what, header, text) => {
    const err = refusal(new TokenCheck(TOKEN), header);
    expect(err?.status).toBe(401);
    expect(err?.headers).toEqual({ 'WWW-Authenticate': 'Bearer' });
    expect(err?.errors).toEqual([{ message: expect.stringContaining(text), field: 'authorization' }]);
    expect(JSON.stringify(err?.errors)).not.toContain(TOKEN.slice(0, 16));
  });

  it('writes the header the check takes, and none without a token', () => {
    expect(bearerHeader(TOKEN)).toEqual({ Authorization: `Bearer ${TOKEN}` });
    expect(bearerHeader(undefined)).toEqual({});
    const check = new TokenCheck(TOKEN);
    expect(refusal(check, bearerHeader(TOKEN).Authorization)).toBeUndefined();
  });
});

describe('EVENT_BUS_TOKEN', () => {
  it.each([
    TOKEN,
    'A'.repeat(16),
    'Zm9vYmFyYmF6cXV4cXV1eA==', // base64
    'Zm9v-YmFy_YmF6.cXV4~cXV1eA', // base64url, with . and ~
  ])('takes %s', (token) => {
    expect(readConfig(transportConfig(), { EVENT_BUS_TOKEN: token }).EVENT_BUS_TOKEN).toBe(token);
  });

  it('is optional: unset or empty, there is none', () => {
    expect(readConfig(transportConfig(), {}).EVENT_BUS_TOKEN).toBeUndefined();
    expect(readConfig(transportConfig(), { EVENT_BUS_TOKEN: '' }).EVENT_BUS_TOKEN).toBeUndefined();
  });

  it.each([
    ['too short', 'short-secret-15c'.slice(0, 15)],
    ['with a space', 'a secret with spaces in it'],
    ['with a quote', 'abcdefghijklmnop"'],
    ['with a dollar sign', 'abcdefgh$ijklmnop'],
    ['padding in the middle', 'abcdefgh==ijklmnop'],
  ])('stops the start on a token %s, naming the variable but not its value', (_what, token) => {
    expect(() => readConfig(transportConfig(), { EVENT_BUS_TOKEN: token })).toThrow(ConfigError);
    expect(() => readConfig(transportConfig(), { EVENT_BUS_TOKEN: token })).toThrow(
      /EVENT_BUS_TOKEN \(value not shown\): must be at least 16 characters/,
    );
    try {
      readConfig(transportConfig(), { EVENT_BUS_TOKEN: token });
    } catch (err) {
      expect((err as Error).message).not.toContain(token);
    }
  });
});

describe('the open event path and the Host it is asked by', () => {
  it.each([
    '127.0.0.1:4005',
    'localhost:4000',
    'LOCALHOST',
    'app.localhost:3000',
    '[::1]:4002',
    '10.96.12.7',
    'event-bus-srv:4005',
    'posts-clusterip-srv',
    'event-bus-srv.default.svc.cluster.local:4005',
    'query-srv.default.svc',
  ])('takes %s, a name of the system itself', (host) => {
    expect(isInternalHost(host)).toBe(true);
    expect(refusal(new TokenCheck(undefined), undefined, host)).toBeUndefined();
  });

  it.each([
    'rebound.example:4000',
    'posts.com',
    'evil.example.',
    'localhost.evil.example',
    '127.0.0.1.nip.io',
  ])('refuses %s, a public name a web page could have made resolve to this machine', (host) => {
    expect(isInternalHost(host)).toBe(false);
    const refused = refusal(new TokenCheck(undefined), undefined, host);
    expect(refused?.status).toBe(403);
    expect(refused?.errors[0]?.field).toBe('host');
  });

  it('lets a token holder use any name', () => {
    expect(refusal(new TokenCheck(TOKEN), `Bearer ${TOKEN}`, 'bus.example.com:4005')).toBeUndefined();
    expect(refusal(new TokenCheck(TOKEN), undefined, 'bus.example.com:4005')?.status).toBe(401);
  });
});
