import { createService, readConfig, z, type ServiceOptions } from '@blog/common';
import { DEFAULT_TRUSTED_PROXIES, trustedProxiesProblems } from './client-address.js';
import { LIVE_DEFAULTS, liveUpdates, type LiveOptions } from './live.js';
import { queryProjection } from './projection.js';
import { queryPublicRoutes, queryRawRoutes } from './routes.js';

/**
 * What the environment may set of the live streams: the limit per client address, and which proxies'
 * X-Real-IP / X-Forwarded-For are believed (client-address.ts). LiveOptions passed in code win.
 */
const liveConfig = {
  LIVE_MAX_PER_ADDRESS: z.coerce
    .number({ error: 'must be a whole number' })
    .int('must be a whole number')
    .min(1, 'must be at least 1')
    .max(100_000)
    .default(LIVE_DEFAULTS.maxClientsPerAddress),
  TRUSTED_PROXIES: z
    .string()
    .default(DEFAULT_TRUSTED_PROXIES.join(','))
    .superRefine((value, ctx) => {
      for (const message of trustedProxiesProblems(value)) ctx.addIssue({ code: 'custom', message });
    }),
};

/** The query service: `GET /posts` and `GET /posts/live` answered ahead of Express, `POST /events`. */
export function createQueryService(options: ServiceOptions & { live?: LiveOptions } = {}) {
  const config = readConfig(liveConfig, options.env);
  const live = liveUpdates({
    maxClientsPerAddress: config.LIVE_MAX_PER_ADDRESS,
    trustedProxies: config.TRUSTED_PROXIES,
    ...options.live,
  });
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
