import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Response } from 'express';
import { Counter } from 'prom-client';
import { z } from 'zod';
import {
  closeServer,
  createHttpApp,
  createLogger,
  createMetrics,
  defaults,
  env,
  finishHttpApp,
  listen,
  outgoingEventSchema,
  type OutgoingEvent,
  parseEventBody,
  parseOr400,
  readConfig,
  type Readiness,
} from '@blog/common';
import { Deliveries } from './delivery.js';
import { EventStore, eventJson } from './store.js';

/**
 * The event bus (docs/event-bus.md): the course's `POST /events` and `GET /events`, backed by a SQLite log,
 * plus delivery to every subscriber. It is not a Subscriber itself; it only shares the HTTP plumbing.
 */

export interface BusOptions {
  /** Where the configuration is read from (tests pass their own). */
  env?: NodeJS.ProcessEnv;
  /** How long events a subscriber does not act on may wait for company (delivery.ts, DEFER_MAX_MS). */
  deferMaxMs?: number;
}

export const PAGE_DEFAULT = 1000;
export const PAGE_MAX = 10_000;
/** The most events one `POST /events` may publish. */
export const PUBLISH_MAX = 1000;
/**
 * How many events the plain `GET /events` reads from SQLite per chunk it writes. Small, so each chunk's
 * strings stay below V8's large-object size and die young: with 1000, streaming a 176 MB log grew the
 * bus's RSS by about 70 MB of garbage awaiting a full GC; with 100, by about 40 (test/bus-memory.test.ts).
 */
const STREAM_CHUNK = 100;

const wholeNumber = z
  .string()
  .regex(/^\d{1,15}$/, 'must be a whole number, 0 or more')
  .transform(Number);

const pageQuery = z.object({
  after: wholeNumber.optional(),
  limit: wholeNumber
    .pipe(z.number().min(1, 'must be at least 1').max(PAGE_MAX, `must be at most ${PAGE_MAX}`))
    .optional(),
});

const deadLettersQuery = z.object({ subscriber: z.string().max(100).optional() });

export function createBus(options: BusOptions = {}) {
  const config = readConfig(
    {
      PORT: env.port(defaults.ports['event-bus']),
      DATA_DIR: env.text('./data'),
      SUBSCRIBERS: env.subscribers(defaults.subscribers),
      LOG_LEVEL: env.logLevel(),
      RETRY_MAX_MS: env.milliseconds(10_000),
    },
    options.env,
  );
  const log = createLogger('event-bus', config.LOG_LEVEL);
  const metrics = createMetrics('event-bus');
  const store = new EventStore(config.DATA_DIR);
  const published = new Counter({
    name: 'eventbus_published_total',
    help: 'Events published, by result: stored, or duplicate (an id already in the log)',
    labelNames: ['result'] as const,
    registers: [metrics.registry],
  });

  /** Stores validated events in one commit and wakes the delivery loops: every publish ends here. */
  const storeEvents = (events: OutgoingEvent[]) => {
    const results = store.appendMany(events);
    results.forEach(({ seq, id, duplicate }, index) => {
      const type = events[index]!.type;
      published.inc({ result: duplicate ? 'duplicate' : 'stored' });
      if (duplicate) log.debug({ id, seq, type }, 'duplicate event not stored again');
      else log.debug({ id, seq, type }, 'event stored');
    });
    if (results.some((result) => !result.duplicate)) deliveries.wakeAll();
    return results;
  };

  const deliveries = new Deliveries(config.SUBSCRIBERS, {
    store,
    log,
    metrics,
    retryMaxMs: config.RETRY_MAX_MS,
    deferMaxMs: options.deferMaxMs,
    // A subscriber's reactions, sent back in its answer to a delivery, are published like any others.
    storeReactions: (events) => storeEvents(parseEventBody(outgoingEventSchema, events, PUBLISH_MAX).events),
  });

  let stopping = false;
  const readiness = (): Readiness => {
    if (stopping) return { ready: false, reason: 'shutting down' };
    if (!store.isOpen) return { ready: false, reason: 'the event database is closed' };
    return { ready: true };
  };
  /** The course's publish, and an array of events in one commit (docs/event-bus.md). */
  const publish = (body: unknown) => {
    // An array publishes several events in one commit (a subscriber's reactions to a batch); a plain
    // object is the course's single event and gets the course's answer.
    const { events, batch } = parseEventBody(outgoingEventSchema, body, PUBLISH_MAX);
    const results = storeEvents(events);
    const answer = results.map(({ seq, id, duplicate }) => ({
      seq,
      id,
      ...(duplicate ? { duplicate } : {}),
    }));
    return { body: batch ? { status: 'OK', events: answer } : { status: 'OK', ...answer[0] } };
  };

  // Every publish comes here: answered ahead of Express, since it is the busiest route of all.
  const app = createHttpApp({
    metrics,
    log,
    readiness,
    rawRoutes: (kit) => ({ 'POST /events': kit.json('/events', publish) }),
  });

  app.get('/events', async (req, res) => {
    const query = parseOr400(pageQuery, req.query);
    // Read before the events, so every event in the answer has seq <= X-Last-Seq.
    const head = store.headSeq();
    res.set('X-Last-Seq', String(head));
    if (query.after === undefined && query.limit === undefined) {
      await streamLog(res, head);
      return;
    }
    const rows = store.after(query.after ?? 0, query.limit ?? PAGE_DEFAULT);
    res.type('application/json').send(`[${rows.map(eventJson).join(',')}]`);
  });

  /**
   * The course's replay: the whole log as one JSON array, written in chunks as SQLite gives them, waiting
   * whenever the client reads slower than we write. The log can be large; it is never all in memory. Each
   * chunk is a short query of its own, so nothing stays open in SQLite while a slow client is waited for.
   */
  async function streamLog(res: Response, head: number): Promise<void> {
    res.status(200).type('application/json');
    res.write('[');
    let after = 0;
    while (after < head && !res.destroyed) {
      const rows = store.after(after, STREAM_CHUNK).filter((row) => row.seq <= head);
      if (rows.length === 0) break;
      const chunk = (after === 0 ? '' : ',') + rows.map(eventJson).join(',');
      after = rows.at(-1)!.seq;
      if (!res.write(chunk)) await drained(res);
    }
    if (!res.destroyed) res.end(']');
  }

  app.get('/subscribers', (_req, res) => {
    res.json(deliveries.status());
  });

  app.get('/dead-letters', (req, res) => {
    const { subscriber } = parseOr400(deadLettersQuery, req.query);
    // `?subscriber=` with no name lists them all, like no parameter.
    res.json(store.deadLetters(subscriber || undefined));
  });

  finishHttpApp(app, log);

  let server: Server | undefined;
  return {
    app,
    config,
    log,
    metrics,
    store,
    deliveries,
    /** Listens on PORT, then starts delivering to every subscriber from its stored cursor. */
    async start(): Promise<Server> {
      server = await listen(app, config.PORT);
      deliveries.start();
      log.info(
        {
          port: (server.address() as AddressInfo).port,
          database: store.file,
          headSeq: store.headSeq(),
          subscribers: config.SUBSCRIBERS.map((s) => `${s.name}=${s.url}`),
        },
        'event-bus listening',
      );
      return server;
    },
    /** Stops taking requests (finishing those in flight), stops the delivery loops, then closes the database. */
    async stop(): Promise<void> {
      stopping = true;
      await Promise.all([server ? closeServer(server) : undefined, deliveries.stop()]);
      store.close();
    },
  };
}

export type Bus = ReturnType<typeof createBus>;

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
