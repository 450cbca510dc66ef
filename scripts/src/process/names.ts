import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** In start order: the bus first, since every other service catches up from it. */
export const SERVICE_NAMES = ['event-bus', 'posts', 'comments', 'query', 'moderation'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];
export const SUBSCRIBER_NAMES = ['posts', 'comments', 'query', 'moderation'] as const satisfies ServiceName[];

/** The course's ports. */
export const DEFAULT_PORTS: Readonly<Record<ServiceName, number>> = {
  posts: 4000,
  comments: 4001,
  query: 4002,
  moderation: 4003,
  'event-bus': 4005,
};

/** The local router's port under `ports: 'default'`: the client's, where the Ingress's address stands. */
export const DEFAULT_ROUTER_PORT = 3000;

/**
 * Where every process listens (the services' HOST, the router, the nats-server): the loopback address, so
 * nothing on the network reaches them. Only the router may be exposed elsewhere (`router.host`).
 */
export const LOOPBACK = '127.0.0.1';

/** How the services exchange events (docs/event-bus.md): the HTTP bus, or NATS JetStream. */
export const TRANSPORTS = ['http', 'nats'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/**
 * The transport options of `npm start`, `npm run chaos` and `npm run bench`: `--transport`, else
 * EVENT_TRANSPORT, else http; with nats, a server already running at NATS_URL (else startSystem runs one)
 * and the stream NATS_STREAM, when set.
 */
export function transportOptions(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): { transport: Transport; natsUrl?: string; natsStream?: string } {
  const value = flag ?? (env.EVENT_TRANSPORT || 'http');
  if (value === 'http') return { transport: 'http' };
  if (value !== 'nats') {
    throw new Error(`--transport (or EVENT_TRANSPORT) is "http" or "nats", not "${value}"`);
  }
  return { transport: 'nats', natsUrl: env.NATS_URL || undefined, natsStream: env.NATS_STREAM || undefined };
}

export type SubscriberName = (typeof SUBSCRIBER_NAMES)[number];

/**
 * What startSystem runs: the five services, and with `transport: 'nats'` its own nats-server. With
 * `replicas` above 1, each subscriber's processes are `<service>-0`, `<service>-1`...; with `natsNodes` above
 * 1, the cluster's nodes are `nats-0`, `nats-1`... The bare name (`query`, `nats`) stands for the first.
 */
export type ProcessName = ServiceName | 'nats' | `${SubscriberName}-${number}` | `nats-${number}`;

/** Replica `index` of a subscriber: the bare name when the system runs one of each, else `<service>-<index>`. */
export const replicaName = (service: SubscriberName, index: number, count: number): ProcessName =>
  count === 1 && index === 0 ? service : `${service}-${index}`;

/** NATS's own port, the nats-server's under `ports: 'default'`. */
export { DEFAULT_NATS_PORT } from '@blog/common/nats-server';

/** How to get a nats-server, for the messages that need one. */
export const NATS_INSTALL_HINT =
  'install it with `apt-get install nats-server` (Debian, Ubuntu) or `brew install nats-server` (macOS), ' +
  'or give the URL of a running one in NATS_URL';

/** The repository root (this file is `scripts/src/process/names.ts` or `scripts/dist/process/names.js`). */
export const ROOT_DIR = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));
