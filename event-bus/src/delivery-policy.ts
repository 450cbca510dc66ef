// The delivery loop's timings and its reading of failures (delivery.ts): what to tune, apart from how.

export const DELIVERY_TIMEOUT_MS = 10_000;
/** Subscribers answer `{}`, or their reactions: at most 200 events, each one's texts at most 10,000 chars. */
export const MAX_ANSWER_BYTES = 8 * 1024 * 1024;
/**
 * How long events of types a subscriber does not act on (it lists the ones it does in `X-Events-Types`),
 * and does not skip (`X-Events-Others: skip`), may wait, to go with the next event it acts on, or together
 * after this long: each POST a subscriber does not need at once costs both processes CPU that the events
 * it does need are waiting for.
 */
export const DEFER_MAX_MS = 50;
/**
 * How long the log must be quiet before a subscriber is told of the events its cursor passed over (types
 * it skips): its `appliedSeq` then reaches the head. Long enough that a log that is busy, or busy in
 * bursts, costs no POST for it; short enough that a quiet system shows every service at the head.
 */
export const TELL_PASSES_AFTER_MS = 1000;
/** How long a delivered cursor may wait before it is written to SQLite (one write for many deliveries). */
export const CURSOR_SAVE_DELAY_MS = 100;
export const FIRST_RETRY_MS = 100;
/**
 * The 4xx answers that mean "not now" rather than "never": the event is sent again later. 401 and 403 say
 * the subscriber refuses the bus's token (EVENT_BUS_TOKEN differs between them): a configuration to fix,
 * not an event to set aside, so nothing is dead-lettered while it lasts.
 */
export const RETRYABLE_4XX = new Set([401, 403, 408, 425, 429]);

/** The delivery loop of one subscriber. */

/** A network error as the loop logs and shows it: its code, then its message. */
export function networkError(err: unknown): string {
  const { code, message } = err as { code?: string; message?: string };
  return code ? `${code}: ${message ?? ''}`.trim() : (message ?? String(err));
}
