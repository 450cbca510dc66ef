import {
  BODY_MAX_BYTES,
  defaults,
  env,
  EVENT_MAX_BYTES,
  HttpError,
  outgoingEventSchema,
  parseEventBody,
  publishDataSchemas,
  readConfig,
  type Logger,
  type Metrics,
  type OutgoingEvent,
  type Readiness,
} from '@blog/common';
import { Deliveries } from './deliveries.js';
import { newSeqs, type Publisher } from './own-events.js';
import { deliveredBytes, EventStore, storedForm, type AppendResult } from './store.js';

/**
 * What the bus's routes need of the event log (docs/event-bus.md). Two kinds implement it: the SQLite log
 * with its delivery loops (`sqliteLog`, the course's bus) and a NATS JetStream stream (`natsLog`), where
 * the bus is only a gateway and JetStream delivers.
 */
export interface BusLog {
  /**
   * Stores validated events in order, each `id` once: a duplicate answers the first seq. With the
   * `publisher` that sent them, `passedThrough` says the bus passed over them in its loop (own-events.ts).
   */
  append(events: OutgoingEvent[], publisher?: Publisher): Promise<Appended>;
  /** The newest seq (0: empty). */
  head(): Promise<number>;
  /**
   * The events with `afterSeq < seq <= throughSeq`, each as its JSON text, in seq order, in chunks of at
   * most `chunk`: the next chunk is read only when the caller asks for it.
   */
  read(afterSeq: number, throughSeq: number, chunk: number): AsyncIterable<string[]>;
  /**
   * As `read`, but only the events of `types`, each as `{"seq":N,"type":...,"data":...}` with any other
   * fields it was published with and without its id and time; chunks cover `chunk` seqs of the log, and
   * one that holds none of those types is not yielded. A log without it is read whole and filtered.
   */
  readTypes?(
    afterSeq: number,
    throughSeq: number,
    chunk: number,
    types: readonly string[],
  ): AsyncIterable<string[]>;
  subscribers(): Promise<unknown[]>;
  deadLetters(subscriber?: string): Promise<unknown[]>;
  readiness(): Promise<Readiness>;
  /** What the "listening" log line says about the log. */
  describe(): Promise<Record<string, unknown>>;
  /** Starts delivering, if this log delivers. */
  start(): void;
  /** Stops delivering, and closes the log once `requestsDone` (the HTTP server's close) resolved. */
  stop(requestsDone: Promise<void>): Promise<void>;
}

/** What a publish stored (`BusLog.append`). */
export interface Appended {
  results: AppendResult[];
  /** Every seq after the publisher's `appliedSeq` up to this one is of a type it skips: it applies the rest. */
  passedThrough?: number;
}

/** What both logs tell the bus of every publish (the `eventbus_published_total` counter, debug lines). */
export type PublishedHook = (events: OutgoingEvent[], results: AppendResult[]) => void;

/** The most events one `POST /events` may publish. */
export const PUBLISH_MAX = 1000;

/**
 * The events of a publish (`POST /events`, or the reactions in a subscriber's answer), each checked as
 * docs/event-bus.md says: 400 for a malformed one, 413 for one whose JSON as delivered would be larger than
 * EVENT_MAX_BYTES, which no subscriber could then be sent. One refused event refuses them all.
 */
export function parsePublished(body: unknown): { events: OutgoingEvent[]; batch: boolean } {
  const parsed = parseEventBody(outgoingEventSchema, body, PUBLISH_MAX, publishDataSchemas);
  parsed.events.forEach((event, index) => {
    const bytes = deliveredBytes(storedForm(event));
    if (bytes <= EVENT_MAX_BYTES) return;
    throw new HttpError(413, [
      {
        message:
          `The event is too large: ${bytes} bytes as the bus stores and delivers it (with its seq, id and ` +
          `time), over the limit of ${EVENT_MAX_BYTES} bytes per event (a subscriber takes ${BODY_MAX_BYTES})`,
        field: parsed.batch ? String(index) : 'body',
      },
    ]);
  });
  return parsed;
}

/**
 * The course's bus: the log in SQLite under DATA_DIR, delivered to SUBSCRIBERS by one loop each
 * (delivery.ts), which also store the reactions subscribers send back in their answers.
 */
export function sqliteLog(
  source: NodeJS.ProcessEnv | undefined,
  {
    config: { EVENT_BUS_TOKEN },
    log,
    metrics,
    published,
  }: { config: { EVENT_BUS_TOKEN?: string }; log: Logger; metrics: Metrics; published: PublishedHook },
  /** How long events a subscriber does not act on may wait for company (delivery.ts, DEFER_MAX_MS). */
  deferMaxMs?: number,
) {
  const config = readConfig(
    {
      DATA_DIR: env.text('./data'),
      SUBSCRIBERS: env.subscribers(defaults.subscribers),
      RETRY_MAX_MS: env.milliseconds(10_000),
    },
    source,
  );
  const store = new EventStore(config.DATA_DIR, {
    onCheckpointError: (err) =>
      log.error({ err }, 'the checkpoint worker failed: the bus checkpoints its log itself again'),
  });

  /**
   * Stores validated events in one commit and wakes the delivery loops: every publish ends here. Before the
   * loops can read them, the publisher's own loop may pass over them (`Deliveries.passOwnEvents`).
   */
  const storeEvents = (events: OutgoingEvent[], publisher?: Publisher): Appended => {
    const results = store.appendMany(events);
    published(events, results);
    if (!results.some((result) => !result.duplicate)) return { results };
    const stored = publisher && newSeqs(results);
    const passedThrough = stored && deliveries.passOwnEvents(publisher, stored);
    deliveries.wakeAll(new Set(events.map((event) => event.type)));
    return passedThrough === undefined ? { results } : { results, passedThrough };
  };

  const deliveries = new Deliveries(config.SUBSCRIBERS, {
    store,
    log,
    metrics,
    retryMaxMs: config.RETRY_MAX_MS,
    deferMaxMs,
    token: EVENT_BUS_TOKEN,
    // A subscriber's reactions, sent back in its answer to a delivery, are published like any others.
    storeReactions: (events) => storeEvents(parsePublished(events).events),
  });

  const busLog: BusLog = {
    append: async (events, publisher) => storeEvents(events, publisher),
    head: async () => store.headSeq(),
    // Each chunk is a short query of its own, so nothing stays open in SQLite while a slow client is waited for.
    async *read(afterSeq, throughSeq, chunk) {
      // Seqs have no holes, so a range of `chunk` seqs is a chunk of events.
      for (let after = afterSeq; after < throughSeq; after += chunk) {
        const events = store.jsonAfter(after, Math.min(throughSeq, after + chunk));
        if (events.length > 0) yield events;
      }
    },
    async *readTypes(afterSeq, throughSeq, chunk, types) {
      const typesJson = JSON.stringify(types);
      for (let after = afterSeq; after < throughSeq; after += chunk) {
        const events = store.typedJsonAfter(after, Math.min(throughSeq, after + chunk), typesJson);
        if (events.length > 0) yield events;
      }
    },
    subscribers: async () => deliveries.status(),
    deadLetters: async (subscriber) => store.deadLetters(subscriber),
    readiness: async () =>
      store.isOpen ? { ready: true } : { ready: false, reason: 'the event database is closed' },
    describe: async () => ({
      database: store.file,
      headSeq: store.headSeq(),
      subscribers: config.SUBSCRIBERS.map((s) => `${s.name}=${s.url}`),
    }),
    start: () => deliveries.start(),
    async stop(requestsDone) {
      await Promise.all([requestsDone, deliveries.stop()]);
      store.close();
    },
  };
  return { config, store, deliveries, log: busLog };
}
