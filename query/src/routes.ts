import { randomUUID } from 'node:crypto';
import type { ServiceContext } from '@blog/common';
import type { Express } from 'express';
import type { QueryState } from './projection.js';

export function queryRoutes(app: Express, { subscriber }: ServiceContext<QueryState>): void {
  // GET /posts is the page everyone loads: serialize once per change, not once per request, and let a
  // browser that already has this version revalidate with a 304.
  const instance = randomUUID().slice(0, 8);
  let cached: { version: number; body: Buffer; etag: string } | undefined;

  app.get('/posts', (req, res) => {
    const { version, posts } = subscriber.state;
    if (cached?.version !== version) {
      cached = { version, body: Buffer.from(JSON.stringify(posts)), etag: `"${instance}-${version}"` };
    }
    res.set('ETag', cached.etag);
    if (req.headers['if-none-match'] === cached.etag) {
      res.status(304).end();
      return;
    }
    res.type('application/json').send(cached.body);
  });
}
