import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Response } from 'express';
import { Counter } from 'prom-client';
import { z } from 'zod';
import {
  closeServer,
  createHttpApp,
  createWithdrawal,
  createLogger,
  createMetrics,
  defaults,
  env,
  finishHttpApp,
  listen,
  PAGE_MAX_BYTES,
  PAGE_MAX_EVENTS,
  parseOr400,
  readConfig,
  shutdownConfig,
  SHUTTING_DOWN,
  TokenCheck,
  transportConfig,
  type Logger,
  type Readiness,
} from '@blog/common';
import { parsePublished, sqliteLog, type BusLog, type PublishedHook } from './log.js';
import { natsLog } from './nats-log.js';
import { PASSED_THROUGH_HEADER, publisherOf, type Publisher } from './own-events.js';
import { eventSeq, typeFilter } from './page-types.js';

/**
 * The event bus (docs/event-bus.md): the course's `POST /events` and `GET /events`, plus `/subscribers` and
 * `/dead-letters`, over an event log (log.ts): SQLite with delivery to every subscriber (`createBus`), or a
 * NATS JetStream stream that delivers by itself (`createNatsBus`). `createEventBus` picks by EVENT_TRANSPORT.
 * It is not a Subscriber itself; it only shares the HTTP plumbing.
 */

export interface BusOptions {
  /** Where the configuration is read from (tests pass their own). */
  env?: NodeJS.ProcessEnv;
  /** How long events a subscriber does not act on may wait for company (delivery.ts, DEFER_MAX_MS). */
  deferMaxMs?: number;
}

export const PAGE_DEFAULT = 1000;
/**
 * How many events the bus reads from the log at a time, for the plain `GET /events` (a chunk per write) and
 * for a page (until PAGE_MAX_BYTES). Small, so each chunk's strings stay below V8's large-object size and die
 * young rather than wait for a full GC (figures in docs/performance.md, "Memory of the bus"; bounded by
 * test/bus-memory.test.ts). A page reads past its byte budget by less than a chunk.
 */
const READ_CHUNK = 100;

const wholeNumber = z
  .string()
  .regex(/^\d{1,15}$/, 'must be a whole number, 0 or more')
  .transform(Number);

/** At most this many types in `?types=`, each a name as a publisher may give it. */
const PAGE_TYPES_MAX = 50;

const pageQuery = z.object({
  after: wholeNumber.optional(),
  limit: wholeNumber
    .pipe(z.number().min(1, 'must be at least 1').max(PAGE_MAX_EVENTS, `must be at most ${PAGE_MAX_EVENTS}`))
    .optional(),
  types: z
    .string()
    .max(PAGE_TYPES_MAX * 101, 'is too long')
    .transform((list) => list.split(','))
    .pipe(
      z
        .array(z.string().min(1, 'must name types, comma-separated').max(100, 'names a type too long'))
        .max(PAGE_TYPES_MAX, `must name at most ${PAGE_TYPES_MAX} types`),
    )
    .optional(),
});

const deadLettersQuery = z.object({ subscriber: z.string().max(100).optional() });

/** The bus EVENT_TRANSPORT asks for: `http` (the default) the SQLite bus, `nats` the JetStream gateway. */
export function createEventBus(options: BusOptions = {}) {
  // All three are checked, whichever bus it is, as every service checks them.
  const { EVENT_TRANSPORT } = readConfig(transportConfig(), options.env);
  return EVENT_TRANSPORT === 'nats' ? createNatsBus(options) : createBus(options);
}

/** The course's bus: the log in SQLite under DATA_DIR, delivered to SUBSCRIBERS. */
export function createBus(options: BusOptions = {}) {
  const parts = busParts(options);
  const sqlite = sqliteLog(options.env, parts, options.deferMaxMs);
  return {
    ...busServer(parts, sqlite.log),
    config: { ...parts.config, ...sqlite.config },
    store: sqlite.store,
    deliveries: sqlite.deliveries,
  };
}

/** The bus with EVENT_TRANSPORT=nats: a gateway to the JetStream stream NATS_STREAM at NATS_URL. */
export function createNatsBus(options: BusOptions = {}) {
  const parts = busParts(options);
  const nats = natsLog(options.env, parts.log, parts.published);
  return {
    ...busServer(parts, nats.log),
    config: { ...parts.config, ...nats.config },
    transport: nats.transport,
  };
}

export type Bus = ReturnType<typeof createBus>;
export type NatsBus = ReturnType<typeof createNatsBus>;

/** What every bus has whatever its log: its own configuration, logger, metrics and the publish counter. */
function busParts(options: BusOptions) {
  const config = readConfig(
    {
      PORT: env.port(defaults.ports['event-bus']),
      HOST: env.host(),
      LOG_LEVEL: env.logLevel(),
      EVENT_BUS_TOKEN: env.token(),
      ...shutdownConfig(),
    },
    options.env,
  );
  const log = createLogger('event-bus', config.LOG_LEVEL);
  const metrics = createMetrics('event-bus');
  const counter = new Counter({
    name: 'eventbus_published_total',
    help: 'Events published, by result: stored, or duplicate (an id already in the log)',
    labelNames: ['result'] as const,
    registers: [metrics.registry],
  });
  const stored = { result: 'stored' };
  const duplicates = { result: 'duplicate' };
  const published: PublishedHook = (events, results) => {
    // Every event of every publish comes here: the lines are made only when debug is on.
    const debug = log.isLevelEnabled('debug');
    results.forEach(({ seq, id, duplicate }, index) => {
      counter.inc(duplicate ? duplicates : stored);
      if (!debug) return;
      const type = events[index]!.type;
      if (duplicate) log.debug({ id, seq, type }, 'duplicate event not stored again');
      else log.debug({ id, seq, type }, 'event stored');
    });
  };
  return { config, log, metrics, published };
}

/** The routes of docs/event-bus.md over `eventLog`, and start/stop. */
function busServer({ config, log, metrics }: ReturnType<typeof busParts>, eventLog: BusLog) {
  // With EVENT_BUS_TOKEN set, every route of the event path needs it; health, readiness and metrics do not.
  const tokenCheck = new TokenCheck(config.EVENT_BUS_TOKEN);
  const withdrawal = createWithdrawal(config.SHUTDOWN_DELAY_MS, log);
  const readiness = async (): Promise<Readiness> =>
    withdrawal.withdrawn ? { ready: false, reason: SHUTTING_DOWN } : eventLog.readiness();

  // Every publish comes here: answered ahead of Express, since it is the busiest route of all.
  const app = createHttpApp({
    metrics,
    log,
    readiness,
    rawRoutes: (kit) => ({
      'POST /events': kit.json(
        '/events',
        (body, req) => publish(eventLog, body, publisherOf(req)),
        (req) => tokenCheck.check(req),
      ),
    }),
  });

  app.get('/events', async (req, res) => {
    tokenCheck.check(req);
    await answerEvents(eventLog, log, parseOr400(pageQuery, req.query), res);
  });

  app.get('/subscribers', async (req, res) => {
    tokenCheck.check(req);
    res.json(await eventLog.subscribers());
  });

  app.get('/dead-letters', async (req, res) => {
    tokenCheck.check(req);
    const { subscriber } = parseOr400(deadLettersQuery, req.query);
    // `?subscriber=` with no name lists them all, like no parameter.
    res.json(await eventLog.deadLetters(subscriber || undefined));
  });

  finishHttpApp(app, log);

  let server: Server | undefined;
  return {
    app,
    log,
    metrics,
    /** Listens on PORT, then starts delivering, if the log delivers. */
    async start(): Promise<Server> {
      server = await listen(app, config.PORT, config.HOST);
      eventLog.start();
      log.info(
        { port: (server.address() as AddressInfo).port, ...(await eventLog.describe()) },
        'event-bus listening',
      );
      return server;
    },
    /** The first step of a stop: not ready, then SHUTDOWN_DELAY_MS of serving (`createWithdrawal`). */
    withdraw: (cutShort?: AbortSignal): Promise<void> => withdrawal.withdraw(server, cutShort),
    /** Stops taking requests (finishing those in flight) and delivering, then closes the log. */
    async stop(): Promise<void> {
      withdrawal.mark(server);
      await eventLog.stop(server ? closeServer(server) : Promise.resolve());
    },
  };
}

/**
 * The events with `after < seq <= through` as one JSON array, written in chunks as the log gives them,
 * waiting whenever the client reads slower than we write: the log can be large, and is never all in
 * memory. The array ends before the event that would take it past `maxBytes` (the first event always
 * comes, however large). A log that fails before the first chunk is a JSON error (503 for NATS gone); one
 * that fails half-way cuts the answer short, and the client sees broken JSON.
 *
 * With `types`, only the events of those types, as `{"events": [...], "through": SEQ}`: the page covers
 * the log up to `through` (every event of those types up to it is in it), so a reader goes on after it,
 * whatever the page holds. A log that reads by type (`BusLog.readTypes`) gives them without id and time.
 */
async function streamEvents(
  eventLog: BusLog,
  log: Logger,
  res: Response,
  { after, through, maxBytes, types }: { after: number; through: number; maxBytes: number; types?: string[] },
) {
  const chunks =
    types && eventLog.readTypes
      ? eventLog.readTypes(after, through, READ_CHUNK, types)
      : eventLog.read(after, through, READ_CHUNK);
  // A log that cannot read by type is read whole, and its events of other types are passed over here.
  const wanted = types && !eventLog.readTypes ? typeFilter(types) : undefined;
  let bytes = types ? '{"events":[],"through":}'.length + String(through).length : 1;
  let count = 0;
  let covered = through;
  let cut = false;
  try {
    // Leaving the loop ends the read (and, on nats, deletes its consumer).
    for await (const chunk of chunks) {
      if (res.destroyed) break;
      const events: string[] = [];
      for (const json of chunk) {
        if (wanted && !wanted(json)) continue;
        const size = Buffer.byteLength(json) + 1;
        cut = count > 0 && bytes + size > maxBytes;
        // The page covers the log up to the event left out: nothing of those types lies before it.
        if (cut) {
          covered = eventSeq(json) - 1;
          break;
        }
        events.push(json);
        bytes += size;
        count++;
      }
      if (!res.headersSent)
        res
          .status(200)
          .type('application/json')
          .write(types ? '{"events":[' : '[');
      const text = events.join(',');
      if (text && !res.write(count > events.length ? `,${text}` : text)) await drained(res);
      if (cut) break;
    }
  } catch (err) {
    if (!res.headersSent) throw err;
    log.error({ err }, 'GET /events: the log failed while streaming');
    res.destroy();
    return;
  }
  if (res.destroyed) return;
  // Read to the end of the range, a page covers all of it, whatever seqs the log holds in it.
  const end = types ? `],"through":${covered}}` : ']';
  if (res.headersSent) res.end(end);
  else res.type('application/json').send(types ? `{"events":[${end}` : '[]');
}

/**
 * The course's publish, and an array of events in one request (docs/event-bus.md); a service of ours names
 * itself (`publisher`) and may be told its own events were passed over in its loop (`X-Events-Passed-Through`).
 */
async function publish(eventLog: BusLog, body: unknown, publisher: Publisher | undefined) {
  // An array publishes several events at once (a subscriber's reactions to a batch); a plain object is
  // the course's single event and gets the course's answer.
  const { events, batch } = parsePublished(body);
  const { results, passedThrough } = await eventLog.append(events, publisher);
  const answer = results.map(({ seq, id, duplicate }) => ({
    seq,
    id,
    ...(duplicate ? { duplicate } : {}),
  }));
  const headers =
    passedThrough === undefined ? undefined : { [PASSED_THROUGH_HEADER]: String(passedThrough) };
  return { body: batch ? { status: 'OK', events: answer } : { status: 'OK', ...answer[0] }, headers };
}

/** `GET /events`: the whole log (the course's replay), or a page of it with `after` and `limit`. */
async function answerEvents(
  eventLog: BusLog,
  log: Logger,
  query: z.infer<typeof pageQuery>,
  res: Response,
): Promise<void> {
  // Read before the events, so every event in the answer has seq <= X-Last-Seq.
  const head = await eventLog.head();
  res.set('X-Last-Seq', String(head));
  if (query.after === undefined && query.limit === undefined) {
    // The course's replay: the whole log.
    await streamEvents(eventLog, log, res, { after: 0, through: head, maxBytes: Infinity });
    return;
  }
  const after = query.after ?? 0;
  const limit = query.limit ?? PAGE_DEFAULT;
  const through = Math.min(head, after + limit);
  // A page: a reader asks for the rest after the last seq it got (or its `through`, with types).
  await streamEvents(eventLog, log, res, { after, through, maxBytes: PAGE_MAX_BYTES, types: query.types });
}

/** Resolves when the response can take more data, or when the client has gone. */
function drained(res: Response): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
