import { createService, runMain } from '@blog/common';
import { queryProjection } from './projection.js';
import { queryRoutes } from './routes.js';

await runMain('query', () =>
  createService({ name: 'query', projection: queryProjection, routes: queryRoutes, cors: true }),
);
