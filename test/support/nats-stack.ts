import type { AddressInfo } from 'node:net';
import { createService, type ServiceDefinition } from '@blog/common';
import { uniqueStreamName } from '@blog/common/nats-server';
import { commentsProjection } from '../../comments/src/projection.js';
import { commentsPublicRoutes, commentsRoutes } from '../../comments/src/routes.js';
import { createNatsBus } from '../../event-bus/src/app.js';
import { moderationProjection } from '../../moderation/src/projection.js';
import { postsProjection } from '../../posts/src/projection.js';
import { postsPublicRoutes, postsRoutes } from '../../posts/src/routes.js';
import { createQueryService } from '../../query/src/service.js';
import { waitFor } from './stack.js';

/**
 * The blog on NATS JetStream, in this process: the four services and the bus gateway with
 * EVENT_TRANSPORT=nats on a stream of their own, on free ports, over real HTTP and a real nats-server
 * (`natsUrl`, from `test/support/nats.ts`). Each service can be stopped and started again alone.
 */

export type NatsServiceName = 'posts' | 'comments' | 'query' | 'moderation';

function createBlogService(name: NatsServiceName, env: Record<string, string>) {
  if (name === 'query') return createQueryService({ env });
  const definitions: Record<Exclude<NatsServiceName, 'query'>, ServiceDefinition<unknown>> = {
    posts: {
      name: 'posts',
      projection: postsProjection,
      routes: postsRoutes,
      publicRoutes: postsPublicRoutes,
    },
    comments: {
      name: 'comments',
      projection: commentsProjection,
      routes: commentsRoutes,
      publicRoutes: commentsPublicRoutes,
    },
    moderation: { name: 'moderation', projection: moderationProjection },
  } as Record<Exclude<NatsServiceName, 'query'>, ServiceDefinition<unknown>>;
  return createService(definitions[name], { env });
}

type BlogService = ReturnType<typeof createBlogService>;

export async function startNatsStack(
  natsUrl: string,
  {
    names = ['posts', 'comments', 'query', 'moderation'] as NatsServiceName[],
    stream = uniqueStreamName('blog'),
  } = {},
) {
  const env = {
    PORT: '0',
    EVENT_TRANSPORT: 'nats',
    NATS_URL: natsUrl,
    NATS_STREAM: stream,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
  };
  const services: Partial<Record<NatsServiceName, BlogService>> = {};
  const urls: Record<string, string> = {};
  const portOf = (server: { address(): AddressInfo | string | null }) =>
    `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  /** Starts (or starts again) one service; resolves once it has caught up with the stream. */
  async function startService(name: NatsServiceName): Promise<BlogService> {
    const service = createBlogService(name, env);
    urls[name] = portOf(await service.start());
    services[name] = service;
    await waitFor(() => service.subscriber.caughtUp, { message: `${name} did not catch up` });
    return service;
  }

  const bus = createNatsBus({ env });
  urls['event-bus'] = portOf(await bus.start());
  for (const name of names) await startService(name);

  return {
    bus,
    stream,
    env,
    services,
    urls: urls as Record<NatsServiceName | 'event-bus', string>,
    startService,
    async stopService(name: NatsServiceName) {
      await services[name]?.stop();
      delete services[name];
    },
    async stop() {
      await Promise.all(Object.values(services).map((service) => service.stop()));
      await bus.stop();
    },
  };
}

export type NatsStack = Awaited<ReturnType<typeof startNatsStack>>;
