import path from 'node:path';
import { chooseLocation, readIngress } from '@blog/router';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commentsPublicRoutes } from '../comments/src/routes.js';
import { postsPublicRoutes } from '../posts/src/routes.js';
import { queryPublicRoutes } from '../query/src/routes.js';
import type { ServiceName } from '../scripts/src/process/names.js';
import { startSystem } from '../scripts/src/process/system.js';
import type { System } from '../scripts/src/process/system-types.js';
import {
  raw,
  SERVICES,
  startBlog,
  urlOf,
  type RawAnswer,
  type Stack,
  type Target,
} from './support/bad-input.js';
import { ROOT } from './support/scripts.js';

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
  /** The routes the Ingress sends to each service, which the course's client calls from the browser. */
  const PUBLIC: [Target, 'GET' | 'POST', string][] = [
    ['posts', 'POST', '/posts/create'],
    ['posts', 'POST', '/posts'],
    ['posts', 'GET', '/posts'],
    ['comments', 'GET', '/posts/p/comments'],
    ['comments', 'POST', '/posts/p/comments'],
    ['query', 'GET', '/posts'],
    ['query', 'GET', '/posts/live'],
  ];
  /** Everything else: the event path, the probes and metrics, unknown routes, all of moderation and the bus. */
  const NOT_PUBLIC: [Target, 'GET' | 'POST', string][] = [
    ...(['posts', 'comments', 'query', 'moderation', 'bus'] as const).flatMap((target) => [
      [target, 'POST', '/events'] as [Target, 'POST', string],
      [target, 'GET', '/metrics'] as [Target, 'GET', string],
      [target, 'GET', '/healthz'] as [Target, 'GET', string],
      [target, 'GET', '/readyz'] as [Target, 'GET', string],
      [target, 'GET', '/nowhere'] as [Target, 'GET', string],
    ]),
    ['bus', 'GET', '/events'],
    ['bus', 'GET', '/subscribers'],
    ['bus', 'GET', '/dead-letters'],
    ['moderation', 'GET', '/posts'],
  ];
  const preflight = (target: Target, method: string, path: string) =>
    raw(urlOf(stack, target), {
      method: 'OPTIONS',
      path,
      headers: {
        ...origin,
        'access-control-request-method': method,
        'access-control-request-headers': 'content-type',
      },
    });
  const send = (target: Target, method: string, path: string) =>
    raw(urlOf(stack, target), {
      method,
      path,
      headers: { ...origin, ...json },
      body: method === 'POST' ? '{}' : undefined,
    });

  it.each(PUBLIC)(
    '%s grants the preflight of %s %s (the course client calls it): 204, its method, Content-Type',
    async (target, method, path) => {
      const res = await preflight(target, method, path);
      expect(res.status).toBe(204);
      expect(res.headers['access-control-allow-origin']).toBe('*');
      expect(String(res.headers['access-control-allow-methods']).split(',')).toContain(method);
      expect(res.headers['access-control-allow-headers']).toBe('content-type');
      expect(res.headers['access-control-allow-credentials']).toBeUndefined();
    },
  );

  // The live stream never ends: test/services/query-live.test.ts checks its headers.
  const answered = PUBLIC.filter(([, , path]) => path !== '/posts/live');
  it.each(answered)(
    '%s allows any origin on %s %s, on answers and errors alike',
    async (target, method, path) => {
      // `{}` is a 400 for both creates; the GETs answer 200.
      const res = await send(target, method, path);
      expect(res.headers['access-control-allow-origin'], `${res.status}`).toBe('*');
    },
  );

  it.each(NOT_PUBLIC)('%s grants nothing on %s %s, preflight or not', async (target, method, path) => {
    const res = await preflight(target, method, path);
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
    expect(res.headers['access-control-allow-methods']).toBeUndefined();
    expect(res.status).toBeGreaterThanOrEqual(400);
    const answer = await send(target, method, path); // `{}`: refused, so nothing is stored
    expect(answer.headers['access-control-allow-origin'], `${answer.status}`).toBeUndefined();
  });
});

describe('the public routes', () => {
  const ingress = readIngress(path.join(ROOT, 'infra', 'k8s', 'ingress-srv.yaml'));
  const services = {
    'posts-clusterip-srv:4000': 'posts',
    'comments-srv:4001': 'comments',
    'query-srv:4002': 'query',
  };
  const routed = (route: string) => {
    const backend = chooseLocation(ingress, route.replace(':id', 'p'))?.backend;
    return services[backend as keyof typeof services] ?? backend;
  };

  it('are what the Ingress sends to each service (and posts keeps the earlier lectures’ /posts)', () => {
    const declared = [
      ...postsPublicRoutes.map((r) => ['posts', r.path]),
      ...commentsPublicRoutes.map((r) => ['comments', r.path]),
      ...queryPublicRoutes.map((r) => ['query', r.path]),
    ];
    expect(declared.map(([service, route]) => [service, route, routed(route!)])).toEqual([
      ['posts', '/posts/create', 'posts'],
      ['posts', '/posts', 'query'], // before the Ingress, the client called posts at localhost:4000/posts
      ['comments', '/posts/:id/comments', 'comments'],
      ['query', '/posts', 'query'],
      ['query', '/posts/live', 'query'],
    ]);
  });
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
