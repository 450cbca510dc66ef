import { randomUUID } from 'node:crypto';
import type { OutgoingHttpHeaders } from 'node:http';
import type { PublicRoute, RawRoutes, ServiceContext } from '@blog/common';
import { Counter } from 'prom-client';
import { LIVE_PATH } from './live.js';
import type { QueryState } from './projection.js';

/** What the browser calls here, as the Ingress's `/posts` sends it: the posts, and their live changes. */
export const queryPublicRoutes: PublicRoute[] = [
  { path: '/posts', methods: ['GET'] },
  { path: LIVE_PATH, methods: ['GET'] },
];

/** One version of the view as `GET /posts` sends it: the body, and the headers of its 200 and its 304. */
interface PostsAnswer {
  version: number;
  etag: string;
  body: Buffer;
  ok: OutgoingHttpHeaders;
  notModified: OutgoingHttpHeaders;
}

/**
 * `GET /posts` is the page everyone loads, so node:http answers it before Express: the body and the headers
 * (the security and CORS ones computed at start, the ETag, the length) are made once per change of the view,
 * not once per request, and a browser that already has this version gets a 304.
 */
export function queryRawRoutes(
  { subscriber, metrics }: ServiceContext<QueryState>,
  headers: Record<string, string>,
): RawRoutes {
  const instance = randomUUID().slice(0, 8);
  const reads = new Counter({
    name: 'query_posts_reads_total',
    help: 'GET /posts answered, by status (200, or 304 when the client had this version)',
    labelNames: ['status'] as const,
    registers: [metrics.registry],
  });
  // Each status's child once: counting through it skips hashing the labels on every read.
  const readsOk = reads.labels({ status: '200' });
  const readsNotModified = reads.labels({ status: '304' });

  const answerOf = (version: number): PostsAnswer => {
    const etag = `"${instance}-${version}"`;
    const body = Buffer.from(JSON.stringify(subscriber.state.posts));
    return {
      version,
      etag,
      body,
      ok: {
        ...headers,
        ETag: etag,
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': body.length,
      },
      notModified: { ...headers, ETag: etag },
    };
  };
  let cached: PostsAnswer | undefined;

  const getPosts: RawRoutes[string] = (req, res) => {
    const { version } = subscriber.state;
    if (cached?.version !== version) cached = answerOf(version);
    if (req.headers['if-none-match'] === cached.etag) {
      readsNotModified.inc();
      res.writeHead(304, cached.notModified).end();
      return;
    }
    readsOk.inc();
    res.writeHead(200, cached.ok).end(cached.body);
  };
  return { 'GET /posts': getPosts, 'HEAD /posts': getPosts };
}
