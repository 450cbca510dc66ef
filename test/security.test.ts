import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSystem, type ServiceName, type System } from '../scripts/src/processes.js';
import {
  raw,
  SERVICES,
  startBlog,
  urlOf,
  type RawAnswer,
  type Stack,
  type Target,
} from './support/bad-input.js';

/**
 * The security properties that do not depend on the client: helmet's headers on every answer (errors and
 * the raw node:http routes included), CORS where the course needs it and nowhere else, body limits, and
 * no stack trace or secret in an error body or in the log lines a bad request leaves.
 */
let stack: Stack;
let postId: string;
const json = { 'content-type': 'application/json' };

beforeAll(async () => {
  stack = await startBlog();
  const post = await raw(stack.urls.posts!, {
    method: 'POST',
    path: '/posts/create',
    headers: json,
    body: '{"title":"t"}',
  });
  postId = (JSON.parse(post.body) as { id: string }).id;
});
afterAll(() => stack?.stop());

/** One request of each kind per service: a success, the raw routes, a 404, a 400 and a 413. */
function requestsOf(target: Target): [string, () => Promise<RawAnswer>][] {
  const url = urlOf(stack, target);
  const big = `{"title":"${'x'.repeat(120_000)}"}`;
  const own: Record<Target, [string, () => Promise<RawAnswer>][]> = {
    posts: [
      ['GET /posts', () => raw(url, { path: '/posts' })],
      [
        'POST /posts/create 201',
        () => raw(url, { method: 'POST', path: '/posts/create', headers: json, body: '{"title":"h"}' }),
      ],
    ],
    comments: [['GET /posts/:id/comments', () => raw(url, { path: `/posts/${postId}/comments` })]],
    query: [
      ['GET /posts (raw route)', () => raw(url, { path: '/posts' })],
      ['HEAD /posts (raw route)', () => raw(url, { method: 'HEAD', path: '/posts' })],
    ],
    moderation: [],
    bus: [
      ['GET /events', () => raw(url, { path: '/events' })],
      ['GET /events?after=0&limit=5', () => raw(url, { path: '/events?after=0&limit=5' })],
      ['GET /subscribers', () => raw(url, { path: '/subscribers' })],
      ['GET /dead-letters', () => raw(url, { path: '/dead-letters' })],
    ],
  };
  return [
    ...own[target],
    ['GET /healthz', () => raw(url, { path: '/healthz' })],
    ['GET /metrics', () => raw(url, { path: '/metrics' })],
    [
      'POST /events 400 (raw route)',
      () => raw(url, { method: 'POST', path: '/events', headers: json, body: '{"type":1}' }),
    ],
    [
      'POST /events 413 (raw route)',
      () => raw(url, { method: 'POST', path: '/events', headers: json, body: big }),
    ],
    [
      'POST /events bad JSON (raw route)',
      () => raw(url, { method: 'POST', path: '/events', headers: json, body: '{' }),
    ],
    ['GET /nowhere 404', () => raw(url, { path: '/nowhere' })],
    ['GET /%zz 400', () => raw(url, { path: '/%zz' })],
    [
      'POST /posts/create 413',
      () => raw(url, { method: 'POST', path: '/posts/create', headers: json, body: big }),
    ],
    ['GET /\\x80 400 (refused by the HTTP parser)', () => raw(url, { path: '/\u0080' })],
  ];
}

describe('security headers', () => {
  it.each(SERVICES)(
    '%s: helmet headers and no X-Powered-By on every answer, errors included',
    async (target) => {
      for (const [what, send] of requestsOf(target)) {
        const res = await send();
        expect(res.headers['x-content-type-options'], `${target} ${what}`).toBe('nosniff');
        expect(res.headers['content-security-policy'], `${target} ${what}`).toContain("default-src 'self'");
        expect(res.headers['x-frame-options'], `${target} ${what}`).toBe('SAMEORIGIN');
        expect(res.headers['strict-transport-security'], `${target} ${what}`).toBeDefined();
        expect(res.headers['x-powered-by'], `${target} ${what}`).toBeUndefined();
        if (res.status >= 400 && !what.startsWith('HEAD')) {
          expect(res.headers['content-type'], `${target} ${what}`).toMatch(/^application\/json/);
          expect(res.body, `${target} ${what}`).not.toMatch(/\bat .+:\d+:\d+|node_modules|Error:/);
        }
      }
    },
  );
});

describe('CORS', () => {
  const origin = { origin: 'http://posts.com' };

  it.each(['posts', 'comments', 'query'] as const)(
    '%s (called from the browser in the course) allows any origin, on answers and errors alike',
    async (target) => {
      const url = urlOf(stack, target);
      for (const path of ['/posts', '/nowhere']) {
        const res = await raw(url, { path, headers: origin });
        expect(res.headers['access-control-allow-origin'], path).toBe('*');
      }
    },
  );

  it.each([
    ['posts', '/posts/create'],
    ['comments', '/posts/p/comments'],
    ['query', '/posts'],
  ] as const)(
    '%s answers the preflight of %s: 204, POST allowed, Content-Type allowed',
    async (target, path) => {
      const res = await raw(urlOf(stack, target), {
        method: 'OPTIONS',
        path,
        headers: {
          ...origin,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type',
        },
      });
      expect(res.status).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBe('*');
      expect(String(res.headers['access-control-allow-methods']).split(',')).toEqual(
        expect.arrayContaining(['GET', 'POST']),
      );
      expect(res.headers['access-control-allow-headers']).toBe('content-type');
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    },
  );

  it.each(['moderation', 'bus'] as const)(
    '%s (never called from a browser) sends no CORS headers',
    async (target) => {
      const url = urlOf(stack, target);
      const get = await raw(url, { path: '/healthz', headers: origin });
      expect(get.headers['access-control-allow-origin']).toBeUndefined();
      const preflight = await raw(url, {
        method: 'OPTIONS',
        path: '/events',
        headers: { ...origin, 'access-control-request-method': 'POST' },
      });
      expect(preflight.headers['access-control-allow-origin']).toBeUndefined();
      expect(preflight.status).toBeGreaterThanOrEqual(400);
    },
  );
});

describe('body limits', () => {
  it.each(SERVICES)('%s takes up to 100 kB and answers 413 JSON above', async (target) => {
    const url = urlOf(stack, target);
    const body = (size: number) => `{"type":"Sized","data":{"a":"${'x'.repeat(size)}"}}`;
    const under = await raw(url, { method: 'POST', path: '/events', headers: json, body: body(90_000) });
    expect(under.status, under.body).toBeLessThan(413);
    const over = await raw(url, { method: 'POST', path: '/events', headers: json, body: body(110_000) });
    expect(over.status).toBe(413);
    expect(JSON.parse(over.body)).toEqual({ errors: [{ message: 'The body is too large', field: 'body' }] });
  });
});

describe('what bad requests leave in the logs (real processes, LOG_LEVEL=info)', () => {
  let system: System;
  const lines: string[] = [];
  const SECRET = 'SECRET-7f3a9c';

  beforeAll(async () => {
    system = await startSystem({
      quiet: true,
      env: { LOG_LEVEL: 'info' },
      onLine: (_name, line) => lines.push(line),
      onStatus: () => undefined,
    });
  });
  afterAll(() => system?.stop());

  it('logs each refusal without a stack trace, the secret headers or the body', async () => {
    const secrets = { authorization: `Bearer ${SECRET}`, cookie: `session=${SECRET}`, ...json };
    const bodies = [
      `{"title": "${SECRET}`, // not JSON
      `{"title":${'['.repeat(200)}${']'.repeat(200)},"p":"${SECRET}"}`, // too deep
      `{"title":"${'x'.repeat(120_000)}${SECRET}"}`, // too large
      `{"title":["${SECRET}"]}`, // wrong type
    ];
    const targets: ServiceName[] = ['posts', 'comments', 'query', 'moderation', 'event-bus'];
    for (const name of targets) {
      const url = system.urls[name];
      for (const body of bodies) {
        const path = name === 'posts' ? '/posts/create' : '/events';
        const res = await raw(url, { method: 'POST', path, headers: secrets, body });
        expect(res.status, `${name} ${body.slice(0, 30)}`).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(res.body).not.toContain(SECRET);
      }
      await raw(url, { path: `/nowhere?token=x`, headers: secrets });
    }
    const deadline = Date.now() + 5000;
    const refusals = () => lines.filter((line) => line.includes('request refused'));
    while (refusals().length < targets.length * bodies.length && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // Each refusal is logged (so the check below looks at something), as one JSON line with no secret.
    expect(refusals().length).toBeGreaterThanOrEqual(targets.length * bodies.length);
    for (const line of lines) {
      expect(line).not.toContain(SECRET);
      expect(line).not.toMatch(/\\n\s+at |\n\s+at /);
      expect(line).not.toMatch(/"stack"/);
      expect(line).not.toMatch(/"level":(50|60)/); // no error or fatal: bad input is the client's, not ours
    }
  });
});
