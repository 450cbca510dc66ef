import { createService, type ServiceOptions } from '@blog/common';
import { liveUpdates, type LiveOptions } from './live.js';
import { queryProjection } from './projection.js';
import { queryPublicRoutes, queryRawRoutes } from './routes.js';

/** The query service: `GET /posts` and `GET /posts/live` answered ahead of Express, `POST /events`. */
export function createQueryService(options: ServiceOptions & { live?: LiveOptions } = {}) {
  const live = liveUpdates(options.live);
  const service = createService(
    {
      name: 'query',
      projection: queryProjection,
      publicRoutes: queryPublicRoutes,
      rawRoutes: (context, headers) => ({
        ...queryRawRoutes(context, headers),
        ...live.routes(context, headers),
      }),
    },
    options,
  );
  return {
    ...service,
    live,
    /** The live streams never end on their own: end them first, or the server would wait for them. */
    async stop() {
      live.close();
      await service.stop();
    },
  };
}
