import type { IncomingMessage, Server } from 'node:http';
import type { Express } from 'express';
import { ConfigError, defaults, env, readConfig, transportConfig } from './config.js';
import { HttpError } from './errors.js';
import {
  eventDataSchemas,
  incomingEventSchema,
  outgoingEventSchema,
  validateEvent,
  type IncomingEvent,
} from './events.js';
import { z } from 'zod';
import {
  closeServer,
  createHttpApp,
  drainConnections,
  finishHttpApp,
  listen,
  type JsonAnswer,
  type PublicRoute,
  type RawKit,
  type RawRoutes,
  type Readiness,
  type ServerTimeouts,
} from './http.js';
import { createLogger, type Logger } from './logger.js';
import { createMetrics, type Metrics } from './metrics.js';
import { NatsTransport, replicaName } from './nats-transport.js';
import { delay } from './process/delay.js';
import type { Projection } from './projection.js';
import { Subscriber } from './subscriber.js';
import { TokenCheck } from './token.js';
import { HttpTransport, unavailableMessage, type EventTransport } from './transport.js';

export type ServiceName = 'posts' | 'comments' | 'query' | 'moderation';

export interface ServiceContext<State> {
  subscriber: Subscriber<State>;
  log: Logger;
  metrics: Metrics;
}

export interface ServiceDefinition<State> {
  name: ServiceName;
  projection: Projection<State>;
  /** The routes the Ingress sends here, called from the browser: the only ones that grant CORS. */
  publicRoutes?: PublicRoute[];
  /** The service's own routes, besides `POST /events`, health and metrics. */
  routes?: (app: Express, context: ServiceContext<State>) => void;
  /**
   * Hot routes answered ahead of Express, with its headers precomputed (see `rawRoutes` in http.ts): public
   * routes, so the headers are helmet's and CORS's; `kit` makes a JSON route of them.
   */
  rawRoutes?: (context: ServiceContext<State>, headers: Record<string, string>, kit: RawKit) => RawRoutes;
}

export interface ServiceOptions {
  env?: NodeJS.ProcessEnv;
  transport?: EventTransport;
  /** The server's timeouts, if not SERVER_TIMEOUTS (tests shorten them). */
  serverTimeouts?: Partial<ServerTimeouts>;
}

/** The variables `transportConfig` reads, as read. */
type TransportSettings = z.infer<z.ZodObject<ReturnType<typeof transportConfig>>>;

const MAX_BATCH = 1000;
const READINESS_CACHE_MS = 2000;

/** Builds a subscriber service: config, logger, metrics, the HTTP app, and `POST /events`. */
export function createService<State>(definition: ServiceDefinition<State>, options: ServiceOptions = {}) {
  const config = readConfig(
    {
      PORT: env.port(defaults.ports[definition.name]),
      HOST: env.host(),
      EVENT_BUS_URL: env.url(defaults.eventBusUrl),
      ...transportConfig(),
      LOG_LEVEL: env.logLevel(),
      ...shutdownConfig(),
    },
    options.env,
  );
  const log = createLogger(definition.name, config.LOG_LEVEL);
  const withdrawal = createWithdrawal(config.SHUTDOWN_DELAY_MS, log);
  const metrics = createMetrics(definition.name);
  const transport = options.transport ?? transportFor(config, log, definition.name);
  // Deliveries must come from the bus: with EVENT_BUS_TOKEN set, POST /events needs it.
  const tokenCheck = new TokenCheck(config.EVENT_BUS_TOKEN);
  const subscriber = new Subscriber(definition.projection, transport, log, metrics, definition.name);
  const readiness = cachedReadiness(subscriber, transport, log, () => withdrawal.withdrawn);
  const context: ServiceContext<State> = { subscriber, log, metrics };
  // The types this service acts on: the bus may hold back the others a moment, to send them together.
  const typesHeader: Record<string, string> = definition.projection.types
    ? { 'X-Events-Types': definition.projection.types.join(',') }
    : {};
  const app = createHttpApp({
    metrics,
    log,
    publicRoutes: definition.publicRoutes,
    readiness,
    rawRoutes: (kit) => ({
      ...definition.rawRoutes?.(context, kit.publicHeaders, kit),
      // Every delivery comes here: answered ahead of Express, since it is the busiest route of all.
      'POST /events': kit.json(
        '/events',
        (body, req) => answerDelivery(subscriber, typesHeader, body, req),
        (req) => tokenCheck.check(req),
      ),
    }),
  });
  definition.routes?.(app, context);
  finishHttpApp(app, log);

  let server: Server | undefined;
  let stopping = false;
  return {
    app,
    config,
    log,
    metrics,
    subscriber,
    /**
     * Listens, then catches up in the background; `/readyz` turns 200 once caught up. A transport that
     * delivers by itself (NATS) starts delivering then, into the same `receive` as `POST /events`.
     */
    async start(): Promise<Server> {
      server = await listen(app, config.PORT, config.HOST, options.serverTimeouts);
      const where =
        transport instanceof NatsTransport
          ? { natsUrl: transport.url, stream: transport.stream }
          : { eventBusUrl: config.EVENT_BUS_URL };
      log.info({ port: config.PORT, ...where }, `${definition.name} listening`);
      void subscriber.start().then((handledSeq) => {
        if (stopping || handledSeq === undefined) return;
        // Delivery goes on from what the catch-up handled, not from the log's first event.
        transport.consume?.(
          definition.name,
          (events) => subscriber.receive(events).then(() => undefined),
          handledSeq + 1,
        );
      });
      return server;
    },
    /** The first step of a stop, before `stop`: see `createWithdrawal`. */
    withdraw: (cutShort?: AbortSignal): Promise<void> => withdrawal.withdraw(server, cutShort),
    /** Stops accepting, finishes the requests in flight, then stops consuming and drains the transport. */
    async stop(): Promise<void> {
      withdrawal.mark(server);
      stopping = true;
      subscriber.stop();
      if (server) await closeServer(server);
      await transport.close();
    },
  };
}

/** The event log as configured: the HTTP bus, or the NATS stream (EVENT_TRANSPORT). */
function transportFor(
  config: TransportSettings & { EVENT_BUS_URL: string },
  log: Logger,
  name: ServiceName,
): EventTransport {
  return config.EVENT_TRANSPORT === 'nats'
    ? new NatsTransport({
        url: config.NATS_URL,
        stream: config.NATS_STREAM,
        replicas: config.NATS_REPLICAS,
        log,
        // Which replica: NATS's monitoring shows the connection under this name.
        name: replicaName(name),
        token: config.EVENT_BUS_TOKEN,
      })
    : new HttpTransport(config.EVENT_BUS_URL, { token: config.EVENT_BUS_TOKEN });
}

/**
 * Ready once caught up and while the event log answers, until a stop begins; the log's answer is kept
 * READINESS_CACHE_MS, so frequent probes do not each cost the log a request.
 */
function cachedReadiness<State>(
  subscriber: Subscriber<State>,
  transport: EventTransport,
  log: Logger,
  withdrawn: () => boolean,
): () => Promise<Readiness> {
  let busCheck: { at: number; readiness: Readiness } | undefined;
  return async () => {
    if (withdrawn()) return { ready: false, reason: SHUTTING_DOWN };
    if (!subscriber.caughtUp) return { ready: false, reason: 'catching up with the event log' };
    if (busCheck && Date.now() - busCheck.at < READINESS_CACHE_MS) return busCheck.readiness;
    const result = await transport.fetchAfter(subscriber.appliedSeq, 1).then(
      () => ({ ready: true }),
      (err: Error) => {
        // The answer says what is unreachable; the log says where, once per change of state.
        if (busCheck?.readiness.ready !== false) log.warn({ err: err.message }, 'not ready');
        return { ready: false, reason: unavailableMessage(err) };
      },
    );
    busCheck = { at: Date.now(), readiness: result };
    return result;
  };
}

/** `POST /events`: applies a delivery and answers what the bus needs to know, with any reactions. */
async function answerDelivery<State>(
  subscriber: Subscriber<State>,
  typesHeader: Record<string, string>,
  body: unknown,
  req: IncomingMessage,
): Promise<JsonAnswer> {
  const events = parseDelivery(body);
  const replyAccepted = String(req.headers['x-events-reply']).toLowerCase() === 'accept';
  const busCursor = seqHeader(req.headers['x-events-cursor']);
  const through = seqHeader(req.headers['x-events-through']);
  const reactions = await subscriber.receive(events, { replyAccepted, busCursor, through });
  // Tells the bus this subscriber takes batches, which seq it acknowledges, whether it may skip the types
  // it does not act on, and how many reactions the answer carries for it to store (docs/event-bus.md).
  const lastSeq = events.reduce((max, event) => Math.max(max, event.seq ?? 0), 0);
  // Copied with Object.assign: a spread with a property after it is slow in Node 20's V8.
  const headers: Record<string, string> = Object.assign({}, typesHeader);
  headers['X-Events-Batch'] = 'accept';
  if (typesHeader['X-Events-Types'] && subscriber.skipsOtherTypes) headers['X-Events-Others'] = 'skip';
  if (lastSeq > 0) headers['X-Events-Acked'] = String(lastSeq);
  if (reactions.length === 0) return { body: {}, headers };
  headers['X-Events-Reactions'] = String(reactions.length);
  return { body: { events: reactions }, headers };
}

/** A seq in a header of the bus (`X-Events-Cursor`, `X-Events-Through`); undefined if absent or malformed. */
function seqHeader(header: string | string[] | undefined): number | undefined {
  const seq = Number(header);
  return header !== undefined && Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined;
}

/**
 * A `POST /events` body: one event, or an array of 1 to `max` events. Every one is checked before any is
 * used (a known type's data by `dataSchemas`), and the first malformed one refuses the whole body with 400
 * naming its fields (`1.data.title`).
 */
export function parseEventBody<S extends typeof outgoingEventSchema | typeof incomingEventSchema>(
  schema: S,
  body: unknown,
  max: number,
  dataSchemas: typeof eventDataSchemas = eventDataSchemas,
): { events: z.infer<S>[]; batch: boolean } {
  if (body === undefined || body === null || typeof body !== 'object') {
    throw HttpError.badRequest(
      'The body must be a JSON event {"type", "data"} sent as application/json',
      'body',
    );
  }
  const batch = Array.isArray(body);
  const items: unknown[] = batch ? body : [body];
  if (items.length === 0 || items.length > max) {
    throw HttpError.badRequest(`Send between 1 and ${max} events at once`, 'body');
  }
  const events = items.map((item, index) => {
    const { event, issues } = validateEvent(schema, item, batch ? `${index}.` : '', dataSchemas);
    if (!event) throw new HttpError(400, issues);
    return event;
  });
  return { events, batch };
}

/** What the bus delivers to a subscriber: one event or a batch. */
export const parseDelivery = (body: unknown): IncomingEvent[] =>
  parseEventBody(incomingEventSchema, body, MAX_BATCH).events;

/** What `/readyz` says from the first step of a stop on. */
export const SHUTTING_DOWN = 'shutting down';

/**
 * SHUTDOWN_DELAY_MS, read by every service and the bus: how long a stopping server goes on serving, not
 * ready, before it stops accepting connections (docs/configuration.md).
 */
export const shutdownConfig = () => ({
  SHUTDOWN_DELAY_MS: z.coerce
    .number({ error: 'must be a number of milliseconds' })
    .int('must be a whole number of milliseconds')
    .min(0, 'must be between 0 and 3600000')
    .max(3_600_000, 'must be between 0 and 3600000')
    .default(0),
});

/**
 * The first step of a stop (`withdraw`): `/readyz` answers 503 at once, every answer closes its
 * connection, and the server goes on serving for `delayMs`, so that whoever routes here (the endpoints of
 * a Service, an Ingress) stops sending before the server stops accepting. `cutShort` ends the wait early;
 * `mark` is the same without the wait.
 */
export function createWithdrawal(delayMs: number, log: Logger) {
  let withdrawn = false;
  const mark = (server: Server | undefined) => {
    withdrawn = true;
    if (server) drainConnections(server);
  };
  return {
    get withdrawn() {
      return withdrawn;
    },
    mark,
    async withdraw(server: Server | undefined, cutShort?: AbortSignal): Promise<void> {
      if (withdrawn) return;
      mark(server);
      if (delayMs === 0) return;
      log.info({ delayMs }, 'not ready; serving on for SHUTDOWN_DELAY_MS before stopping');
      await delay(delayMs, cutShort);
    },
  };
}

/** What `runMain` runs: a service, or the bus. */
export interface MainProcess {
  start(): Promise<unknown>;
  /** The first step of a stop (`createWithdrawal`), if the process has one. */
  withdraw?(cutShort: AbortSignal): Promise<void>;
  stop(): Promise<void>;
  log?: Logger;
}

/**
 * The start file of a service: run it, exit with a clear message on bad config, and stop cleanly on
 * SIGTERM/SIGINT: withdraw (not ready, SHUTDOWN_DELAY_MS of serving), then stop, then exit 0. A second
 * signal only cuts the delay short: the requests in flight still finish and the transport still drains,
 * so nothing acknowledged is lost.
 */
export async function runMain(name: string, create: () => MainProcess) {
  let service: ReturnType<typeof create>;
  try {
    service = create();
    await service.start();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${name}: ${err.message}\n`);
    } else {
      process.stderr.write(`${name}: could not start: ${(err as Error).message}\n`);
    }
    process.exit(1);
  }
  let stopping = false;
  const cutShort = new AbortController();
  const shutdown = (signal: string) => {
    if (stopping) {
      service.log?.info({ signal }, 'already shutting down: requests in flight finish first');
      cutShort.abort();
      return;
    }
    stopping = true;
    service.log?.info({ signal }, 'shutting down');
    Promise.resolve(service.withdraw?.(cutShort.signal))
      .then(() => service.stop())
      .then(
        () => process.exit(0),
        (err: Error) => {
          service.log?.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
}
