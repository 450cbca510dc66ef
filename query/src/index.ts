import { createService, runMain } from '@blog/common';
import { queryProjection } from './projection.js';
import { queryRawRoutes } from './routes.js';

await runMain('query', () =>
  createService({ name: 'query', projection: queryProjection, rawRoutes: queryRawRoutes, cors: true }),
);
