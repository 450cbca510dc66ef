import { createService, runMain } from '@blog/common';
import { postsProjection } from './projection.js';
import { postsPublicRoutes, postsRoutes } from './routes.js';

await runMain('posts', () =>
  createService({
    name: 'posts',
    projection: postsProjection,
    routes: postsRoutes,
    publicRoutes: postsPublicRoutes,
  }),
);
