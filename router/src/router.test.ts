import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chooseLocation, normalizePath, parseIngress, readIngress, type IngressTable } from './ingress.js';
import { localBackends, startRouter, type Router } from './router.js';

const INGRESS_FILE = fileURLToPath(new URL('../../infra/k8s/ingress-srv.yaml', import.meta.url));

/** What ingress-nginx does with the course's Ingress: the table the local router must follow. */
const EXPECTED: Array<[string, string | undefined]> = [
  ['/posts/create', 'posts-clusterip-srv:4000'],
  ['/posts', 'query-srv:4002'],
  ['/posts?x=1', 'query-srv:4002'],
  ['/posts/live', 'query-srv:4002'],
  ['/posts/abc123/comments', 'comments-srv:4001'],
  ['/posts/abc123/comments/', 'comments-srv:4001'],
  ['/POSTS/abc123/Comments', 'comments-srv:4001'],
  ['/', 'client-srv:3000'],
  ['/index.html', 'client-srv:3000'],
  ['/assets/x.js', 'client-srv:3000'],
  ['/events', 'client-srv:3000'],
  ['/metrics', 'client-srv:3000'],
  ['/healthz', 'client-srv:3000'],
  ['/subscribers', 'client-srv:3000'],
  ['//posts//create', 'posts-clusterip-srv:4000'],
  ['/posts/../events', 'client-srv:3000'],
  ['/posts/%2e%2e/metrics', 'client-srv:3000'],
];

const routeOf = (table: IngressTable, url: string) => chooseLocation(table, url)?.backend;
const tableOf = (table: IngressTable) =>
  Object.fromEntries(EXPECTED.map(([url]) => [url, routeOf(table, url)]));

describe('the Ingress table (infra/k8s/ingress-srv.yaml, as ingress-nginx reads it)', () => {
  const table = readIngress(INGRESS_FILE);

  it('is a regex Ingress whose locations are ordered as ingress-nginx writes them', () => {
    expect(table.regex).toBe(true);
    expect(table.hosts).toEqual(['posts.com']);
    expect(table.locations.map((location) => location.path)).toEqual([
      '/posts/?(.*)/comments',
      '/posts/create',
      '/posts',
      '/?(.*)',
    ]);
  });

  it.each(EXPECTED)('sends %s to %s', (url, backend) => {
    expect(routeOf(table, url)).toBe(backend);
  });

  it('changes when the Ingress changes in a way that breaks the routes', () => {
    const text = readFileSync(INGRESS_FILE, 'utf8');
    const expected = Object.fromEntries(EXPECTED);
    expect(tableOf(table)).toEqual(expected);

    // The comments path removed: comments would go to query.
    const withoutComments = text.replace('path: /posts/?(.*)/comments', 'path: /nothing-here');
    expect(routeOf(parseIngress(withoutComments), '/posts/abc123/comments')).toBe('query-srv:4002');
    // use-regex off: the comments path is a literal prefix, and `/posts/create` an exact + prefix pair.
    const noRegex = text.replace("use-regex: 'true'", "use-regex: 'false'");
    expect(tableOf(parseIngress(noRegex))).not.toEqual(expected);
    expect(routeOf(parseIngress(noRegex), '/posts/abc123/comments')).toBe('query-srv:4002');
    // Another backend for a path.
    const swapped = text
      .replace('name: query-srv', 'name: posts-clusterip-srv')
      .replace('number: 4002', 'number: 4000');
    expect(routeOf(parseIngress(swapped), '/posts')).toBe('posts-clusterip-srv:4000');

    // The order in the file does not matter to ingress-nginx (it sorts): reversing it changes nothing.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ingress-'));
    try {
      const parsed = text.split('\n');
      const start = parsed.findIndex((line) => line.trim() === 'paths:');
      // Each path item starts at its `- path:` line (with the comment just above it, if any).
      const items: string[][] = [];
      for (const line of parsed.slice(start + 1)) {
        const opensItem =
          line.trimStart().startsWith('- path:') && !items.at(-1)?.at(-1)?.trimStart().startsWith('#');
        if (opensItem || line.trimStart().startsWith('# ')) items.push([line]);
        else items.at(-1)!.push(line);
      }
      const reversed = [...parsed.slice(0, start + 1), ...items.reverse().flat()].join('\n');
      expect(reversed.indexOf('path: /?(.*)')).toBeLessThan(reversed.indexOf('path: /posts/create'));
      const file = path.join(dir, 'ingress.yaml');
      writeFileSync(file, reversed);
      expect(readIngress(file).locations.map((l) => l.ingressPath)).toEqual(
        table.locations.map((l) => l.ingressPath),
      );
      expect(tableOf(readIngress(file))).toEqual(expected);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('orders like ingress-nginx: longer paths first, equal lengths by path descending', () => {
    const ingress = (paths: string[]) =>
      parseIngress(`apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: t
  annotations:
    nginx.ingress.kubernetes.io/use-regex: "true"
spec:
  rules:
    - host: t.com
      http:
        paths:
${paths.map((p, i) => `          - path: ${p}\n            pathType: ImplementationSpecific\n            backend: { service: { name: s${i}, port: { number: 80 } } }`).join('\n')}
`);
    // The docs' warning example: the regex written later still comes first, being longer.
    const docs = ingress(['/foo/bar/bar', '/foo/bar/[A-Z0-9]{3}']);
    expect(docs.locations.map((l) => l.path)).toEqual(['/foo/bar/[A-Z0-9]{3}', '/foo/bar/bar']);
    expect(routeOf(docs, '/foo/bar/bar')).toBe('s1:80');
    expect(ingress(['/a', '/c', '/b']).locations.map((l) => l.path)).toEqual(['/c', '/b', '/a']);
  });

  it('normalizes the path as nginx does before matching', () => {
    expect(normalizePath('/a//b/./c/../d?x=/y')).toBe('/a/b/d');
    expect(normalizePath('/a/%62')).toBe('/a/b');
    expect(normalizePath('/..')).toBeUndefined();
    expect(normalizePath('/%zz')).toBeUndefined();
    expect(normalizePath('/a/')).toBe('/a/');
  });
});

// ------------------------------------------------------------------------------------------------ HTTP

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A real HTTP backend that answers what it was asked, and streams on `/posts/live`. */
async function echoBackend(name: string) {
  const seen: Seen[] = [];
  let release: (() => void) | undefined;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      if (req.url === '/posts/live') {
        res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-cache' });
        res.write('data: first\n\n');
        release = () => res.end('data: second\n\n');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json', 'X-Backend': name });
      res.end(JSON.stringify({ backend: name, url: req.url, body }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    seen,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    release: () => release?.(),
    close: () => new Promise<void>((resolve) => server.close(() => resolve(server.closeAllConnections()))),
  };
}

describe('the router, over HTTP', () => {
  let backends: Record<'posts' | 'comments' | 'query', Awaited<ReturnType<typeof echoBackend>>>;
  let router: Router;
  let clientDir: string;

  beforeAll(async () => {
    backends = {
      posts: await echoBackend('posts'),
      comments: await echoBackend('comments'),
      query: await echoBackend('query'),
    };
    clientDir = mkdtempSync(path.join(os.tmpdir(), 'client-dist-'));
    mkdirSync(path.join(clientDir, 'assets'));
    writeFileSync(path.join(clientDir, 'index.html'), '<!doctype html><title>Blog</title>');
    writeFileSync(path.join(clientDir, 'assets', 'index-abc123.js'), 'console.log("app")');
    router = await startRouter({
      ingressFile: INGRESS_FILE,
      backends: localBackends(
        {
          posts: backends.posts.url,
          comments: backends.comments.url,
          query: backends.query.url,
          moderation: 'http://127.0.0.1:9', // nothing listens there: the Ingress never sends anything
          'event-bus': 'http://127.0.0.1:9',
        },
        { dir: clientDir },
      ),
    });
  });
  afterAll(async () => {
    await router?.close();
    await Promise.all(Object.values(backends ?? {}).map((backend) => backend.close()));
    rmSync(clientDir, { recursive: true, force: true });
  });

  it('forwards method, path, query, headers and body to the backend the Ingress names, with X-Forwarded-*', async () => {
    const response = await fetch(`${router.url}/posts/create?draft=1`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'X-Custom': 'kept' },
      body: JSON.stringify({ title: 'Hi' }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('x-backend')).toBe('posts');
    const seen = backends.posts.seen.at(-1)!;
    expect(seen).toMatchObject({ method: 'POST', url: '/posts/create?draft=1', body: '{"title":"Hi"}' });
    expect(seen.headers).toMatchObject({
      'content-type': 'application/json',
      'x-custom': 'kept',
      'x-forwarded-host': `localhost:${router.port}`,
      'x-forwarded-port': String(router.port),
      'x-forwarded-proto': 'http',
      'x-forwarded-for': expect.stringMatching(/127\.0\.0\.1|::1/),
    });

    expect(await (await fetch(`${router.url}/posts/abc/comments`)).json()).toMatchObject({
      backend: 'comments',
    });
    expect(await (await fetch(`${router.url}/posts?x=1`)).json()).toMatchObject({
      backend: 'query',
      url: '/posts?x=1',
    });
  });

  it('streams server-sent events as they are written', async () => {
    const response = await fetch(`${router.url}/posts/live`);
    expect(response.headers.get('content-type')).toBe('text/event-stream');
    const reader = response.body!.getReader();
    const first = new TextDecoder().decode((await reader.read()).value);
    // The first message arrives while the backend still holds the stream open.
    expect(first).toBe('data: first\n\n');
    backends.query.release();
    let rest = '';
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read())
      rest += new TextDecoder().decode(chunk.value);
    expect(rest).toBe('data: second\n\n');
  });

  it('serves the client: files, long cache for hashed assets, index.html for app paths', async () => {
    const index = await fetch(`${router.url}/`);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('cache-control')).toBe('no-cache');
    expect(await index.text()).toContain('<title>Blog</title>');
    const asset = await fetch(`${router.url}/assets/index-abc123.js`);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(await asset.text()).toBe('console.log("app")');
    expect((await fetch(`${router.url}/assets/missing.js`)).status).toBe(404);
    const again = await fetch(`${router.url}/`, { headers: { 'If-None-Match': index.headers.get('etag')! } });
    expect(again.status).toBe(304);
  });

  it('never reaches /events, /metrics or /healthz of a service: the Ingress sends them to the client', async () => {
    const before = Object.values(backends).reduce((sum, backend) => sum + backend.seen.length, 0);
    for (const url of ['/events', '/metrics', '/healthz', '/readyz', '/subscribers', '/posts/../events']) {
      const response = await fetch(`${router.url}${url}`);
      expect(response.status, url).toBe(200);
      expect(await response.text(), url).toContain('<title>Blog</title>');
    }
    const post = await fetch(`${router.url}/events`, { method: 'POST', body: '{}' });
    expect(post.status).toBe(405);
    expect(await post.json()).toEqual({ errors: [{ message: expect.any(String) }] });
    expect(Object.values(backends).reduce((sum, backend) => sum + backend.seen.length, 0)).toBe(before);
  });

  it('answers 502 JSON when the backend is down, 400 for a path nginx refuses', async () => {
    const down = await startRouter({
      ingressFile: INGRESS_FILE,
      backends: localBackends(
        {
          posts: 'http://127.0.0.1:9',
          comments: 'http://127.0.0.1:9',
          query: 'http://127.0.0.1:9',
          moderation: '',
          'event-bus': '',
        },
        { dir: clientDir },
      ),
    });
    try {
      const response = await fetch(`${down.url}/posts`);
      expect(response.status).toBe(502);
      expect(await response.json()).toEqual({
        errors: [{ message: expect.stringContaining('the query service (query-srv:4002) is not reachable') }],
      });
    } finally {
      await down.close();
    }
    const bad = await fetch(`${router.url}/%zz`);
    expect(bad.status).toBe(400);
  });

  it('answers 404 JSON where the Ingress routes nothing', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ingress-'));
    const file = path.join(dir, 'ingress.yaml');
    // Without the catch-all, `/` matches no path: ingress-nginx's default backend answers 404.
    writeFileSync(file, readFileSync(INGRESS_FILE, 'utf8').replace('path: /?(.*)', 'path: /client-only'));
    const partial = await startRouter({
      ingressFile: file,
      backends: localBackends(
        { posts: '', comments: '', query: '', moderation: '', 'event-bus': '' },
        { dir: clientDir },
      ),
    });
    try {
      const response = await fetch(`${partial.url}/events`);
      expect(response.status).toBe(404);
      expect(await response.json()).toEqual({
        errors: [{ message: 'No route for /events in ingress.yaml' }],
      });
    } finally {
      await partial.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses to start when the Ingress names a Service it does not know', async () => {
    await expect(
      startRouter({
        ingressFile: INGRESS_FILE,
        backends: { 'client-srv:3000': { kind: 'static', dir: clientDir, name: 'client' } },
      }),
    ).rejects.toThrow(/routes to .*query-srv:4002.*which the local router does not know/);
  });
});
