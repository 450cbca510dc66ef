import { setTimeout as sleepUnlessAborted } from 'node:timers/promises';
import { backoffDelay, BODY_MAX_BYTES, type HttpAnswer, type HttpClient, type Logger } from '@blog/common';
import type { DeliveryMetrics } from './delivery-metrics.js';
import { storeAnsweredReactions, type StoreReactions } from './delivery-reactions.js';
import { eventJson, type EventRow, type EventStore } from './store.js';

/**
 * Delivery (docs/event-bus.md, "Delivery"): one loop per subscriber, so each one gets the log in seq order,
 * one POST at a time, and a slow or dead subscriber holds up nobody else. A loop's only state that matters
 * is its cursor, stored in SQLite after every acknowledged POST, so a restart resumes where it stopped
 * (at-least-once: a POST answered just before a crash is sent again, and subscribers skip seqs they have).
 */

/**
 * The largest batch, in events and in bytes of its JSON. An event larger than BATCH_MAX_BYTES goes alone; no
 * body is ever larger than a subscriber takes (BODY_MAX_BYTES, common/src/limits.ts): the bus stores no event
 * that would not fit in it alone, within `[...]`.
 */
export const BATCH_MAX_EVENTS = 200;
export const BATCH_MAX_BYTES = Math.min(64 * 1024, BODY_MAX_BYTES);
export const DELIVERY_TIMEOUT_MS = 10_000;
/** Subscribers answer `{}`, or their reactions: at most 200 events, each one's texts at most 10,000 chars. */
const MAX_ANSWER_BYTES = 8 * 1024 * 1024;
/**
 * How long events of types a subscriber does not act on (it lists the ones it does in `X-Events-Types`)
 * may wait, to go with the next event it acts on, or together after this long: each POST a subscriber
 * does not need at once costs both processes CPU that the events it does need are waiting for.
 */
export const DEFER_MAX_MS = 50;
/** How long a delivered cursor may wait before it is written to SQLite (one write for many deliveries). */
const CURSOR_SAVE_DELAY_MS = 100;
const FIRST_RETRY_MS = 100;
/**
 * The 4xx answers that mean "not now" rather than "never": the event is sent again later. 401 and 403 say
 * the subscriber refuses the bus's token (EVENT_BUS_TOKEN differs between them): a configuration to fix,
 * not an event to set aside, so nothing is dead-lettered while it lasts.
 */
const RETRYABLE_4XX = new Set([401, 403, 408, 425, 429]);

export interface SubscriberConfig {
  name: string;
  url: string;
}

/** What every loop shares: the log, the HTTP client, the metrics and the settings. */
export interface LoopContext {
  store: EventStore;
  client: HttpClient;
  metrics: DeliveryMetrics;
  /** The cap of the exponential backoff between retries (RETRY_MAX_MS). */
  retryMaxMs: number;
  storeReactions: StoreReactions;
  log: Logger;
  /** How long events a subscriber does not act on may wait for company (default DEFER_MAX_MS). */
  deferMaxMs?: number;
  /** `Authorization: Bearer <EVENT_BUS_TOKEN>`, when a token is set. */
  authorization: Record<string, string>;
}

/** What `GET /subscribers` shows of one subscriber. */
export interface SubscriberStatus {
  name: string;
  url: string;
  /** The last seq delivered (or dead-lettered); the next POST starts after it. */
  cursor: number;
  /** Events stored but not yet delivered. */
  lag: number;
  /** Failed attempts in a row (0 once a POST succeeds). */
  failures: number;
  lastError: string | null;
  deadLetters: number;
  /** Whether the subscriber takes arrays of events (it said `X-Events-Batch: accept`). */
  batches: boolean;
  /** The types it acts on (`X-Events-Types`); others may wait up to DEFER_MAX_MS. Null: all, at once. */
  types: string[] | null;
}

/** What the loop sends next: one event as an object, or a batch as an array. */
interface Delivery {
  rows: EventRow[];
  batch: boolean;
}

/** The delivery loop of one subscriber. */
export class SubscriberLoop {
  readonly name: string;
  readonly url: string;
  cursor: number;
  failures = 0;
  lastError: string | null = null;
  /** Set by the subscriber's last 2xx answer: does it take arrays of events? */
  batches = false;
  /** Set by the subscriber's last 2xx answer: the types it acts on (undefined: all of them). */
  types: Set<string> | undefined;
  /** While events wait for company (see DEFER_MAX_MS): when they go anyway, and how far they were checked. */
  private deferral: { until: number; checkedSeq: number } | undefined;
  /** After a batch went wrong, the events up to this seq are sent again one by one. */
  private singlesUntil = 0;
  private wakeUp: (() => void) | undefined;
  private cursorSaveTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private readonly log: Logger;
  private readonly store: EventStore;
  private readonly client: HttpClient;
  private readonly metrics: DeliveryMetrics;
  private readonly retryMaxMs: number;
  private readonly storeReactionsInLog: StoreReactions;
  private readonly deferMaxMs: number;
  private readonly authorization: Record<string, string>;

  constructor(subscriber: SubscriberConfig, context: LoopContext) {
    this.name = subscriber.name;
    this.url = subscriber.url;
    this.store = context.store;
    this.client = context.client;
    this.metrics = context.metrics;
    this.retryMaxMs = context.retryMaxMs;
    this.storeReactionsInLog = context.storeReactions;
    this.deferMaxMs = context.deferMaxMs ?? DEFER_MAX_MS;
    this.authorization = context.authorization;
    this.cursor = this.store.cursor(this.name);
    this.log = context.log.child({ subscriber: this.name });
    // Zero-valued series from the start, so a dashboard shows the subscriber before anything goes wrong.
    this.metrics.deadLetters.inc({ subscriber: this.name }, 0);
  }

  get stopped(): boolean {
    return this.abort.signal.aborted;
  }

  start(): void {
    this.running ??= this.run();
  }

  /** A publish happened: an idle loop goes at once (this is what keeps end-to-end latency low). */
  wake(): void {
    const wakeUp = this.wakeUp;
    this.wakeUp = undefined;
    wakeUp?.();
  }

  /** Ends the loop: aborts a POST in flight and a backoff in progress; the cursor stays where it was. */
  async stop(): Promise<void> {
    this.abort.abort();
    this.wake();
    await this.running;
    this.saveCursor();
  }

  status(head: number): SubscriberStatus {
    return {
      name: this.name,
      url: this.url,
      cursor: this.cursor,
      lag: Math.max(0, head - this.cursor),
      failures: this.failures,
      lastError: this.lastError,
      deadLetters: this.store.deadLetterCount(this.name),
      batches: this.batches,
      types: this.types ? [...this.types] : null,
    };
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const delivery = this.next();
        // Reading the log and starting to wait happen in the same tick, so no publish can slip in between.
        if (!delivery) await this.idle();
        else if (this.mayWait(delivery)) await this.idle(this.deferral!.until - Date.now());
        else await this.deliver(delivery);
      } catch (err) {
        // Not a subscriber's fault (say the database went away): log it and try again later, never die.
        this.log.error({ err }, 'delivery loop error');
        await this.backoff((err as Error).message);
      }
    }
  }

  /** Waits for a publish (`wake`), or at most `timeoutMs`. */
  private idle(timeoutMs?: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => this.wake(), timeoutMs);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  /**
   * Whether these events may wait for company: none is of a type the subscriber acts on, the batch is not
   * full, and they have not waited DEFER_MAX_MS yet. Each wake-up checks only the events added since.
   */
  private mayWait({ rows, batch }: Delivery): boolean {
    const types = this.types;
    if (!types || !batch || rows.length >= BATCH_MAX_EVENTS) return false;
    const deferral = (this.deferral ??= { until: Date.now() + this.deferMaxMs, checkedSeq: this.cursor });
    if (Date.now() >= deferral.until) return false;
    for (const row of rows) {
      if (row.seq > deferral.checkedSeq && types.has(row.type)) return false;
    }
    deferral.checkedSeq = rows.at(-1)!.seq;
    return true;
  }

  /** The next events after the cursor: one, or a batch if the subscriber takes them. */
  private next(): Delivery | undefined {
    const batch = this.batches && this.cursor >= this.singlesUntil;
    const rows = this.store.after(this.cursor, batch ? BATCH_MAX_EVENTS : 1, BATCH_MAX_BYTES);
    return rows.length === 0 ? undefined : { rows, batch };
  }

  /** The POST body: one event as an object, or as many as fit BATCH_MAX_BYTES (of UTF-8) as an array. */
  private static body({ rows, batch }: Delivery): { rows: EventRow[]; body: string } {
    if (!batch) return { rows: rows.slice(0, 1), body: eventJson(rows[0]!) };
    const items: string[] = [];
    let bytes = 1; // `[`, then each event with the `,` or `]` after it
    for (const row of rows) {
      const json = eventJson(row);
      const size = Buffer.byteLength(json) + 1;
      if (items.length > 0 && bytes + size > BATCH_MAX_BYTES) break;
      items.push(json);
      bytes += size;
    }
    return { rows: rows.slice(0, items.length), body: `[${items.join(',')}]` };
  }

  private async deliver(delivery: Delivery): Promise<void> {
    this.deferral = undefined;
    const { rows, body } = SubscriberLoop.body(delivery);
    const res = await this.post(body, rows);
    if (!res) return;
    const { status } = res;
    if (status >= 200 && status < 300) return this.answered(res, rows, delivery.batch);
    if (status >= 500 || status < 400 || RETRYABLE_4XX.has(status)) {
      this.count('failed');
      const why = status === 401 || status === 403 ? ': it refuses the token (EVENT_BUS_TOKEN)' : '';
      return this.backoff(`answered ${status}${why}`, rows);
    }
    this.refused(res, rows, delivery.batch);
  }

  /** Sends the body; undefined (after the backoff) if it did not reach the subscriber, or stopped. */
  private async post(body: string, rows: EventRow[]): Promise<HttpAnswer | undefined> {
    const endTimer = this.metrics.duration.startTimer({ subscriber: this.name });
    try {
      return await this.client.request(this.url, {
        method: 'POST',
        body,
        // X-Events-Reply: a subscriber of ours may answer with its reactions instead of publishing them.
        // X-Events-Cursor: the reactions it answered to every event up to there are stored.
        headers: {
          ...this.authorization,
          'X-Events-Reply': 'accept',
          'X-Events-Cursor': String(this.cursor),
        },
        timeoutMs: DELIVERY_TIMEOUT_MS,
        signal: this.abort.signal,
        maxAnswerBytes: MAX_ANSWER_BYTES,
      });
    } catch (err) {
      if (this.stopped) return undefined; // aborted by stop(): the events go out again after the restart
      this.count('failed');
      await this.backoff(networkError(err), rows);
      return undefined;
    } finally {
      endTimer();
    }
  }

  /** A 2xx: delivered, unless a batch went unacknowledged or its reactions could not be stored. */
  private async answered(res: HttpAnswer, rows: EventRow[], batch: boolean): Promise<void> {
    const first = rows[0]!;
    const last = rows.at(-1)!;
    if (batch && Number(res.headers['x-events-acked']) !== last.seq) {
      // A 2xx without the ack: maybe a course-original service answers at this URL now, which took the
      // array for one odd event. Nothing of the batch counts as delivered; it goes again one by one.
      this.count('unacked');
      this.recovered();
      this.log.warn({ fromSeq: first.seq, toSeq: last.seq }, 'batch not acknowledged, sending single events');
      this.batches = false;
      this.singlesUntil = last.seq;
      return;
    }
    if (res.headers['x-events-reactions'] !== undefined && !this.storeReactions(res.body, rows)) {
      // The log could not take them (say it is closing): the events go again, and so do the reactions.
      this.count('failed');
      return this.backoff('could not store the reactions in the answer', rows);
    }
    this.count('delivered');
    this.recovered();
    this.batches = String(res.headers['x-events-batch']).toLowerCase() === 'accept';
    this.types = parseTypes(res.headers['x-events-types']);
    this.advance(last.seq);
    this.log.debug({ fromSeq: first.seq, toSeq: last.seq, batch }, 'delivered');
  }

  /**
   * Any other 4xx: the subscriber will never take this. For a batch we cannot tell which event it
   * means, so the batch goes again one by one and only the offending event ends up dead-lettered.
   */
  private refused(res: HttpAnswer, rows: EventRow[], batch: boolean): void {
    const first = rows[0]!;
    this.recovered();
    if (batch) {
      this.count('batch-rejected');
      this.singlesUntil = rows.at(-1)!.seq;
      return;
    }
    this.count('dead-letter');
    this.store.addDeadLetter(this.name, first.seq, res.status, res.body);
    this.metrics.deadLetters.inc({ subscriber: this.name });
    this.log.warn(
      {
        id: first.id,
        seq: first.seq,
        type: first.type,
        status: res.status,
        response: res.body.slice(0, 200),
      },
      'event rejected by the subscriber, dead-lettered',
    );
    this.advance(first.seq);
  }

  /** Stores the reactions in a subscriber's answer; false if the log could not take them now. */
  private storeReactions(body: string, rows: EventRow[]): boolean {
    return storeAnsweredReactions(body, rows, this.storeReactionsInLog, this.log, () =>
      this.count('reactions-rejected'),
    );
  }

  /**
   * Moves the cursor now and stores it a moment later, once for many deliveries: after a crash the
   * subscriber may get the last few events again, which it acknowledges without applying them twice.
   */
  private advance(seq: number): void {
    this.cursor = seq;
    this.cursorSaveTimer ??= setTimeout(() => this.saveCursor(), CURSOR_SAVE_DELAY_MS);
  }

  private saveCursor(): void {
    clearTimeout(this.cursorSaveTimer);
    this.cursorSaveTimer = undefined;
    if (this.store.isOpen) this.store.setCursor(this.name, this.cursor);
  }

  private recovered(): void {
    if (this.failures > 0) this.log.info({ after: this.failures }, 'subscriber reachable again');
    this.failures = 0;
    this.lastError = null;
  }

  /**
   * Waits before the next try: 100 ms doubling up to retryMaxMs, with jitter so that subscribers that
   * fail together do not retry in lockstep. A publish does not cut it short (a subscriber that is down is
   * not hammered); a stop does.
   */
  private async backoff(error: string, rows?: EventRow[]): Promise<void> {
    this.failures++;
    this.lastError = error;
    const delay = backoffDelay(this.failures - 1, {
      firstMs: FIRST_RETRY_MS,
      maxMs: this.retryMaxMs,
      jitter: true,
    });
    this.log.warn(
      { error, failures: this.failures, retryInMs: delay, fromSeq: rows?.[0]?.seq, toSeq: rows?.at(-1)?.seq },
      'delivery failed, will retry',
    );
    await sleepUnlessAborted(delay, undefined, { signal: this.abort.signal }).catch(() => undefined);
  }

  private count(outcome: string): void {
    this.metrics.deliveries.inc({ subscriber: this.name, outcome });
  }
}

/** `X-Events-Types: A,B`: the types a subscriber acts on; absent or empty means all of them. */
function parseTypes(header: string | string[] | undefined): Set<string> | undefined {
  const types = String(header ?? '')
    .split(',')
    .map((type) => type.trim())
    .filter(Boolean);
  return types.length > 0 ? new Set(types) : undefined;
}

function networkError(err: unknown): string {
  const { code, message } = err as { code?: string; message?: string };
  return code ? `${code}: ${message ?? ''}`.trim() : (message ?? String(err));
}
