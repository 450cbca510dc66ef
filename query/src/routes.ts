import { randomUUID } from 'node:crypto';
import type { PublicRoute, RawRoutes, ServiceContext } from '@blog/common';
import { Counter } from 'prom-client';
import { LIVE_PATH } from './live.js';
import type { QueryState } from './projection.js';

/** What the browser calls here, as the Ingress's `/posts` sends it: the posts, and their live changes. */
export const queryPublicRoutes: PublicRoute[] = [
  { path: '/posts', methods: ['GET'] },
  { path: LIVE_PATH, methods: ['GET'] },
];

/**
 * `GET /posts` is the page everyone loads, so node:http answers it before Express: the body is serialized
 * once per change, not once per request, the security and CORS headers are the ones computed at start, and
 * a browser that already has this version gets a 304.
 */
export function queryRawRoutes(
  { subscriber, metrics }: ServiceContext<QueryState>,
  headers: Record<string, string>,
): RawRoutes {
  const instance = randomUUID().slice(0, 8);
  let cached: { version: number; body: Buffer; etag: string } | undefined;
  const reads = new Counter({
    name: 'query_posts_reads_total',
    help: 'GET /posts answered, by status (200, or 304 when the client had this version)',
    labelNames: ['status'] as const,
    registers: [metrics.registry],
  });

  const getPosts: RawRoutes[string] = (req, res) => {
    const { version, posts } = subscriber.state;
    if (cached?.version !== version) {
      cached = { version, body: Buffer.from(JSON.stringify(posts)), etag: `"${instance}-${version}"` };
    }
    if (req.headers['if-none-match'] === cached.etag) {
      reads.inc({ status: '304' });
      res.writeHead(304, { ...headers, ETag: cached.etag }).end();
      return;
    }
    reads.inc({ status: '200' });
    res
      .writeHead(200, {
        ...headers,
        ETag: cached.etag,
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': cached.body.length,
      })
      .end(cached.body);
  };
  return { 'GET /posts': getPosts, 'HEAD /posts': getPosts };
}
