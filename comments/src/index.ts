import { createService, runMain } from '@blog/common';
import { commentsProjection } from './projection.js';
import { commentsPublicRoutes, commentsRawRoutes, commentsRoutes } from './routes.js';

await runMain('comments', () =>
  createService({
    name: 'comments',
    projection: commentsProjection,
    routes: commentsRoutes,
    rawRoutes: commentsRawRoutes,
    publicRoutes: commentsPublicRoutes,
  }),
);
