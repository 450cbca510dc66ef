import { setTimeout as sleepUnlessAborted } from 'node:timers/promises';
import { backoffDelay, type HttpAnswer, type HttpClient, type Logger } from '@blog/common';
import { subscriberMetrics, type SubscriberMetrics } from './delivery-metrics.js';
import {
  BATCH_MAX_BYTES,
  BATCH_MAX_EVENTS,
  deliveryBody,
  parseTypesWanted,
  planDelivery,
  type Delivery,
} from './delivery-plan.js';
import { storeAnsweredReactions, type StoreReactions } from './delivery-reactions.js';
import type { EventRow, EventStore } from './store.js';
import {
  loopStatus,
  type LoopContext,
  type SubscriberConfig,
  type SubscriberStatus,
} from './delivery-status.js';
import * as policy from './delivery-policy.js';

export { BATCH_MAX_BYTES, BATCH_MAX_EVENTS };
export { DEFER_MAX_MS, DELIVERY_TIMEOUT_MS, TELL_PASSES_AFTER_MS } from './delivery-policy.js';
export type { LoopContext, SubscriberConfig, SubscriberStatus };

/**
 * Delivery (docs/event-bus.md, "Delivery"): one loop per subscriber, so each one gets the log in seq order,
 * one POST at a time, and a slow or dead subscriber holds up nobody else. A loop's only state that matters
 * is its cursor, stored in SQLite after every acknowledged POST, so a restart resumes where it stopped
 * (at-least-once: a POST answered just before a crash is sent again, and subscribers skip seqs they have).
 */

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
  /** Set by the subscriber's last 2xx answer: are the other types passed over, never sent? */
  skipOthers = false;
  /**
   * While the cursor has passed over events the subscriber has not been told of (no delivery since), the
   * cursor it knows: sent as `X-Events-Cursor` and stored in SQLite, so the passes are told with the next
   * delivery's `X-Events-Through`, also after a restart.
   */
  private passedFrom: number | undefined;
  /** The cursor as last written to SQLite: an unchanged one is not written again. */
  private savedCursor: number;
  /** While events wait for company (see DEFER_MAX_MS): when they go anyway, and how far they were checked. */
  private deferral: { until: number; checkedSeq: number } | undefined;
  /** While the log is quiet after passes the subscriber was not told of: when to tell it (`whenQuiet`). */
  private quietUntil: number | undefined;
  /** After a batch went wrong, the events up to this seq are sent again one by one. */
  private singlesUntil = 0;
  /** From sending a POST until its answer is handled: that moves the cursor, so nothing else may. */
  private posting = false;
  private wakeUp: (() => void) | undefined;
  private cursorSaveTimer: NodeJS.Timeout | undefined;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private readonly log: Logger;
  private readonly store: EventStore;
  private readonly client: HttpClient;
  private readonly metrics: SubscriberMetrics;
  private readonly retryMaxMs: number;
  private readonly storeReactionsInLog: StoreReactions;
  private readonly deferMaxMs: number;
  private readonly authorization: Record<string, string>;
  /** The subscriber's URL, parsed once rather than at every POST. */
  private readonly target: URL;
  /** The last `X-Events-Types` and `X-Events-Others` answered, read again only when they change. */
  private typesAnswered: [string | string[] | undefined, string | string[] | undefined] = [
    undefined,
    undefined,
  ];

  constructor(subscriber: SubscriberConfig, context: LoopContext) {
    this.name = subscriber.name;
    this.url = subscriber.url;
    this.target = new URL(subscriber.url);
    this.store = context.store;
    this.client = context.client;
    this.metrics = subscriberMetrics(context.metrics, subscriber.name);
    this.retryMaxMs = context.retryMaxMs;
    this.storeReactionsInLog = context.storeReactions;
    this.deferMaxMs = context.deferMaxMs ?? policy.DEFER_MAX_MS;
    this.authorization = context.authorization;
    this.cursor = this.store.cursor(this.name);
    this.savedCursor = this.cursor;
    this.log = context.log.child({ subscriber: this.name });
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

  /**
   * Ends the loop: ends a backoff in progress, and the POST in flight once the HTTP client closes its
   * connections (`Deliveries.stop`); the cursor stays where it was.
   */
  async stop(): Promise<void> {
    this.abort.abort();
    this.wake();
    await this.running;
    this.saveCursor();
  }

  status(head: number): SubscriberStatus {
    return loopStatus(this, head, this.store.deadLetterCount(this.name));
  }

  /**
   * The events `firstSeq`..`lastSeq`, just committed and not yet read by any loop, were published by this
   * subscriber, which has applied every seq up to `appliedSeq`: passes over them, as if delivered, when it
   * will certainly apply them from the publish's answer (docs/event-bus.md, "A publisher's own events").
   */
  passOwnEvents(appliedSeq: number, firstSeq: number, lastSeq: number): boolean {
    const idle = !this.posting && this.failures === 0 && !this.stopped;
    if (!idle || this.cursor !== firstSeq - 1 || this.knownCursor > appliedSeq) return false;
    this.metrics.passedOwn();
    this.advance(lastSeq);
    return true;
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        const delivery = this.next();
        if (delivery) this.quietUntil = undefined;
        // Reading the log and starting to wait happen in the same tick, so no publish can slip in between.
        if (!delivery) await this.whenQuiet();
        else if (delivery.rows.length === 0) await this.passOver(delivery.through!);
        else if (this.mayWait(delivery)) await this.idle(this.deferral!.until - Date.now());
        else await this.deliver(delivery);
      } catch (err) {
        // Not a subscriber's fault (say the database went away): log it and try again later, never die.
        this.log.error({ err }, 'delivery loop error');
        await this.backoff((err as Error).message);
      }
    }
  }

  /**
   * Nothing after the cursor: waits for a publish. If the cursor passed over events the subscriber has not
   * been told of, and nothing comes for TELL_PASSES_AFTER_MS, tells it with the last of them (one POST per quiet
   * spell), so its `appliedSeq` reaches the head whenever the log is quiet.
   */
  private async whenQuiet(): Promise<void> {
    if (this.passedFrom === undefined) return this.idle();
    this.quietUntil ??= Date.now() + policy.TELL_PASSES_AFTER_MS;
    if (Date.now() < this.quietUntil) return this.idle(this.quietUntil - Date.now());
    const last = this.store.after(this.cursor - 1, 1);
    if (last.length === 0) return this.idle();
    await this.deliver({ rows: last, batch: this.batches, through: this.cursor });
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
    if (!types || this.skipOthers || !batch || rows.length >= BATCH_MAX_EVENTS) return false;
    const deferral = (this.deferral ??= { until: Date.now() + this.deferMaxMs, checkedSeq: this.cursor });
    if (Date.now() >= deferral.until) return false;
    for (const row of rows) {
      if (row.seq > deferral.checkedSeq && types.has(row.type)) return false;
    }
    deferral.checkedSeq = rows.at(-1)!.seq;
    return true;
  }

  /**
   * The next events after the cursor: one, or a batch if the subscriber takes them; only those of its
   * types if it skips the others (none: the cursor only moves past them).
   */
  private next(): Delivery | undefined {
    const batch = this.batches && this.cursor >= this.singlesUntil;
    const wanted = { types: this.types, skipOthers: this.skipOthers };
    const limit = batch || wanted.skipOthers ? BATCH_MAX_EVENTS : 1;
    const read = this.store.after(this.cursor, limit, BATCH_MAX_BYTES);
    return read.length === 0 ? undefined : planDelivery(read, batch, wanted);
  }

  /**
   * Moves the cursor past events of types the subscriber skips, without a POST: the next delivery tells
   * it (`X-Events-Through`). Yields before the next read, so a long run of them holds up nothing else.
   */
  private async passOver(through: number): Promise<void> {
    this.passedFrom ??= this.cursor;
    this.cursor = through;
    this.metrics.passed();
    await new Promise((resolve) => setImmediate(resolve));
  }

  /** POSTs the events and handles the answer; no publish may move the cursor meanwhile (`passOwnEvents`). */
  private async deliver(delivery: Delivery): Promise<void> {
    this.posting = true;
    await this.deliverNow(delivery).finally(() => (this.posting = false));
  }

  private async deliverNow(delivery: Delivery): Promise<void> {
    this.deferral = undefined;
    const { rows, body, through } = deliveryBody(delivery);
    const res = await this.post(body, rows, through);
    if (!res) return;
    const { status } = res;
    if (status >= 200 && status < 300) return this.answered(res, rows, delivery.batch, through);
    if (status >= 500 || status < 400 || policy.RETRYABLE_4XX.has(status)) {
      this.metrics.count('failed');
      const why = status === 401 || status === 403 ? ': it refuses the token (EVENT_BUS_TOKEN)' : '';
      return this.backoff(`answered ${status}${why}`, rows);
    }
    this.refused(res, rows, delivery.batch);
  }

  /** Sends the body; undefined (after the backoff) if it did not reach the subscriber, or stopped. */
  private async post(body: string, rows: EventRow[], through?: number): Promise<HttpAnswer | undefined> {
    const started = performance.now();
    // X-Events-Reply: a subscriber of ours may answer with its reactions instead of publishing them.
    // X-Events-Cursor: the reactions it answered to every event up to there are stored.
    // X-Events-Through: the seqs up to there that are not in the body are of types it skips.
    const headers: Record<string, string> = {
      ...this.authorization,
      'X-Events-Reply': 'accept',
      'X-Events-Cursor': String(this.knownCursor),
    };
    if (through !== undefined) headers['X-Events-Through'] = String(through);
    try {
      // No abort signal: one costs a listener per POST. A stop closes the connections instead.
      return await this.client.request(this.target, {
        method: 'POST',
        body,
        headers,
        timeoutMs: policy.DELIVERY_TIMEOUT_MS,
        maxAnswerBytes: policy.MAX_ANSWER_BYTES,
      });
    } catch (err) {
      if (this.stopped) return undefined; // cut off by stop(): the events go out again after the restart
      this.metrics.count('failed');
      await this.backoff(policy.networkError(err), rows);
      return undefined;
    } finally {
      this.metrics.postTook((performance.now() - started) / 1000);
    }
  }

  /** A 2xx: delivered, unless a batch went unacknowledged or its reactions could not be stored. */
  private async answered(res: HttpAnswer, rows: EventRow[], batch: boolean, through?: number): Promise<void> {
    const first = rows[0]!;
    const last = rows.at(-1)!;
    if (batch && Number(res.headers['x-events-acked']) !== last.seq) {
      // A 2xx without the ack: maybe a course-original service answers at this URL now, which took the
      // array for one odd event. Nothing of the batch counts as delivered; it goes again one by one.
      this.metrics.count('unacked');
      this.recovered();
      this.log.warn({ fromSeq: first.seq, toSeq: last.seq }, 'batch not acknowledged, sending single events');
      this.batches = false;
      // Nor are types any more what that answerer listed: it may need every event.
      this.types = undefined;
      this.skipOthers = false;
      this.typesAnswered = [undefined, undefined];
      this.singlesUntil = last.seq;
      return;
    }
    if (res.headers['x-events-reactions'] !== undefined && !this.storeReactions(res.body, rows)) {
      // The log could not take them (say it is closing): the events go again, and so do the reactions.
      this.metrics.count('failed');
      return this.backoff('could not store the reactions in the answer', rows);
    }
    this.metrics.count('delivered');
    this.recovered();
    this.batches = String(res.headers['x-events-batch']).toLowerCase() === 'accept';
    this.readTypesWanted(res.headers['x-events-types'], res.headers['x-events-others']);
    this.advance(through ?? last.seq);
    this.log.debug({ fromSeq: first.seq, toSeq: last.seq, batch }, 'delivered');
  }

  /** What the subscriber says of the types it acts on: the same headers as last time change nothing. */
  private readTypesWanted(types: string | string[] | undefined, others: string | string[] | undefined): void {
    const [lastTypes, lastOthers] = this.typesAnswered;
    if (types !== undefined && types === lastTypes && others === lastOthers) return;
    this.typesAnswered = [types, others];
    ({ types: this.types, skipOthers: this.skipOthers } = parseTypesWanted(types, others));
  }

  /**
   * Any other 4xx: the subscriber will never take this. For a batch we cannot tell which event it
   * means, so the batch goes again one by one and only the offending event ends up dead-lettered.
   */
  private refused(res: HttpAnswer, rows: EventRow[], batch: boolean): void {
    const first = rows[0]!;
    this.recovered();
    if (batch) {
      this.metrics.count('batch-rejected');
      this.singlesUntil = rows.at(-1)!.seq;
      return;
    }
    this.metrics.count('dead-letter');
    this.store.addDeadLetter(this.name, first.seq, res.status, res.body);
    this.metrics.deadLettered();
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
      this.metrics.count('reactions-rejected'),
    );
  }

  /**
   * Moves the cursor now and stores it a moment later, once for many deliveries: after a crash the
   * subscriber may get the last few events again, which it acknowledges without applying them twice.
   */
  private advance(seq: number): void {
    this.cursor = seq;
    this.passedFrom = undefined;
    this.cursorSaveTimer ??= setTimeout(() => this.saveCursor(), policy.CURSOR_SAVE_DELAY_MS);
  }

  /** The cursor as the subscriber knows it: without the passes it has not been told of yet. */
  private get knownCursor(): number {
    return this.passedFrom ?? this.cursor;
  }

  /** Writes the cursor the subscriber knows, if it moved since the last write. */
  private saveCursor(): void {
    clearTimeout(this.cursorSaveTimer);
    this.cursorSaveTimer = undefined;
    const cursor = this.knownCursor;
    if (cursor === this.savedCursor || !this.store.isOpen) return;
    this.store.setCursor(this.name, cursor);
    this.savedCursor = cursor;
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
      firstMs: policy.FIRST_RETRY_MS,
      maxMs: this.retryMaxMs,
      jitter: true,
    });
    this.log.warn(
      { error, failures: this.failures, retryInMs: delay, fromSeq: rows?.[0]?.seq, toSeq: rows?.at(-1)?.seq },
      'delivery failed, will retry',
    );
    await sleepUnlessAborted(delay, undefined, { signal: this.abort.signal }).catch(() => undefined);
  }
}
