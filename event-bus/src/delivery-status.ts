import type { HttpClient, Logger } from '@blog/common';
import type { DeliveryMetrics } from './delivery-metrics.js';
import type { StoreReactions } from './delivery-reactions.js';
import type { EventStore } from './store.js';

/** A subscriber of `SUBSCRIBERS`: its name and the URL of its `POST /events`. */
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
  /** The last seq delivered, dead-lettered, or passed over (a type it skips); the next POST starts after it. */
  cursor: number;
  /** Events stored after the cursor. */
  lag: number;
  /** Failed attempts in a row (0 once a POST succeeds). */
  failures: number;
  lastError: string | null;
  deadLetters: number;
  /** Whether the subscriber takes arrays of events (it said `X-Events-Batch: accept`). */
  batches: boolean;
  /** The types it acts on (`X-Events-Types`). Null: all, at once. */
  types: string[] | null;
  /** The other types: never sent (`skip`), or sent with the next it acts on (`later`). Null: no types. */
  others: 'skip' | 'later' | null;
}

/** A loop's status as `GET /subscribers` shows it. */
export function loopStatus(
  loop: Pick<SubscriberStatus, 'name' | 'url' | 'cursor' | 'failures' | 'lastError' | 'batches'> & {
    types: Set<string> | undefined;
    skipOthers: boolean;
  },
  head: number,
  deadLetters: number,
): SubscriberStatus {
  return {
    name: loop.name,
    url: loop.url,
    cursor: loop.cursor,
    lag: Math.max(0, head - loop.cursor),
    failures: loop.failures,
    lastError: loop.lastError,
    deadLetters,
    batches: loop.batches,
    types: loop.types ? [...loop.types] : null,
    others: loop.types ? (loop.skipOthers ? 'skip' : 'later') : null,
  };
}
