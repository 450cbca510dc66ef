import { isIP } from 'node:net';
import { z } from 'zod';
import { TOKEN_PATTERN } from './token.js';

/**
 * Configuration comes from the environment, by the names in the variable tables of
 * docs/configuration.md and docs/event-bus.md. A malformed value stops the start
 * with a message naming the variable, instead of failing later somewhere far from the cause.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

const httpUrl = z
  .url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' })
  .transform((url) => url.replace(/\/+$/, ''));

const natsUrl = z.url({
  protocol: /^(nats|tls|ws|wss)$/,
  hostname: /./,
  error: 'must be a nats://, tls://, ws:// or wss:// URL',
});

export const env = {
  port: (defaultPort: number) =>
    z.coerce
      .number({ error: 'must be a port number' })
      .int('must be a whole number')
      .min(0, 'must be between 0 and 65535')
      .max(65535, 'must be between 0 and 65535')
      .default(defaultPort),
  url: (defaultUrl: string) => httpUrl.default(defaultUrl),
  /** The address to listen on (HOST); left out, every interface, as a container needs. */
  host: () =>
    z
      .string()
      .refine((value) => isIP(value) !== 0, 'must be an IP address, such as 127.0.0.1, 0.0.0.0 or ::')
      .optional(),
  logLevel: () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  text: (defaultValue: string) => z.string().trim().min(1, 'must not be empty').default(defaultValue),
  milliseconds: (defaultValue: number) =>
    z.coerce
      .number({ error: 'must be a number of milliseconds' })
      .int()
      .min(1)
      .max(3_600_000)
      .default(defaultValue),
  /** Which transport carries the events: the HTTP event-bus (the course's), or NATS JetStream. */
  eventTransport: () => z.enum(['http', 'nats'], { error: 'must be http or nats' }).default('http'),
  /**
   * One NATS server, or several comma-separated (the nodes of a cluster): each is checked, and a bad one is
   * named. What comes out is the list joined by commas, without blanks.
   */
  natsUrl: (defaultUrl: string) =>
    z
      .string()
      .default(defaultUrl)
      .transform((value, ctx) => {
        const urls = value
          .split(',')
          .map((entry) => entry.trim())
          .filter(Boolean);
        if (urls.length === 0) {
          ctx.addIssue({ code: 'custom', message: 'must name at least one NATS server' });
          return z.NEVER;
        }
        for (const url of urls) {
          const checked = natsUrl.safeParse(url);
          if (!checked.success) {
            const message = checked.error.issues[0]?.message ?? 'is not a NATS URL';
            ctx.addIssue({ code: 'custom', message: urls.length > 1 ? `"${url}" ${message}` : message });
            return z.NEVER;
          }
        }
        return urls.join(',');
      }),
  /** The stream's replication (NATS_REPLICAS): JetStream keeps each event on this many nodes. */
  natsReplicas: () =>
    z.coerce
      .number({ error: 'must be a number from 1 to 5' })
      .int('must be a whole number from 1 to 5')
      .min(1, 'must be a number from 1 to 5')
      .max(5, 'must be a number from 1 to 5')
      .default(1),
  /** A JetStream stream name that is also one token of a subject (`<stream>.events`). */
  natsStream: (defaultValue: string) =>
    z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, - or _')
      .default(defaultValue),
  /** EVENT_BUS_TOKEN: optional; its value is never shown, not even in an error (see SECRET_VARIABLES). */
  token: () =>
    z
      .string()
      .regex(
        TOKEN_PATTERN,
        'must be at least 16 characters of A-Z a-z 0-9 - . _ ~ + / (then = padding), such as the output of `openssl rand -hex 32`',
      )
      .optional(),
  /** `name=url,name=url`: the bus's subscribers, in the order given. */
  subscribers: (defaultValue: string) =>
    z
      .string()
      .default(defaultValue)
      .transform((value, ctx) => {
        const entries = value
          .split(',')
          .map((entry) => entry.trim())
          .filter(Boolean);
        const subscribers: { name: string; url: string }[] = [];
        for (const entry of entries) {
          const match = /^([a-z0-9][a-z0-9_-]{0,62})=(.+)$/i.exec(entry);
          const url = match && httpUrl.safeParse(match[2]);
          if (!match || !url?.success) {
            ctx.addIssue({ code: 'custom', message: `"${entry}" is not name=http://host:port/path` });
            return z.NEVER;
          }
          if (subscribers.some((s) => s.name === match[1])) {
            ctx.addIssue({ code: 'custom', message: `the name "${match[1]}" appears twice` });
            return z.NEVER;
          }
          subscribers.push({ name: match[1]!, url: url.data });
        }
        return subscribers;
      }),
};

/** Variables whose value a message never shows (a malformed one is named, its value left out). */
const SECRET_VARIABLES = new Set(['EVENT_BUS_TOKEN']);

export function readConfig<Shape extends z.ZodRawShape>(
  shape: Shape,
  source: NodeJS.ProcessEnv = process.env,
): z.infer<z.ZodObject<Shape>> {
  // An empty variable means "not set", as in shell habits like `PORT= npm start`.
  const values = Object.fromEntries(
    Object.keys(shape).map((name) => [name, source[name] === '' ? undefined : source[name]]),
  );
  const result = z.object(shape).safeParse(values);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    const name = String(issue.path[0]);
    if (SECRET_VARIABLES.has(name)) return `${name} (value not shown): ${issue.message}`;
    return `${name}=${JSON.stringify(values[name] ?? '')}: ${issue.message}`;
  });
  // One line per problem: a value may fail two checks that say the same (a NATS_URL without a scheme).
  throw new ConfigError(`Invalid configuration:\n  ${[...new Set(lines)].join('\n  ')}`);
}

/**
 * EVENT_TRANSPORT, NATS_URL, NATS_STREAM, NATS_REPLICAS, and EVENT_BUS_TOKEN, which both transports send: read by every
 * service and the bus (docs/event-bus.md).
 */
export const transportConfig = () => ({
  EVENT_TRANSPORT: env.eventTransport(),
  NATS_URL: env.natsUrl(defaults.natsUrl),
  NATS_STREAM: env.natsStream(defaults.natsStream),
  NATS_REPLICAS: env.natsReplicas(),
  EVENT_BUS_TOKEN: env.token(),
});

/** The course's Kubernetes Service names, so the defaults work unchanged in the cluster and in compose. */
export const defaults = {
  eventBusUrl: 'http://event-bus-srv:4005',
  /** The Kubernetes Service `nats-srv` in front of the NATS server. */
  natsUrl: 'nats://nats-srv:4222',
  natsStream: 'blog',
  subscribers:
    'posts=http://posts-clusterip-srv:4000/events,comments=http://comments-srv:4001/events,' +
    'query=http://query-srv:4002/events,moderation=http://moderation-srv:4003/events',
  ports: { posts: 4000, comments: 4001, query: 4002, moderation: 4003, 'event-bus': 4005 },
} as const;
