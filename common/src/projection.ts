import { createHash } from 'node:crypto';
import type { BlogEvent, IncomingEvent, KnownEventType, OutgoingEvent } from './events.js';

// What a service gives the Subscriber (subscriber.ts): its projection, and the ids of its reactions.

/** Why an event was acknowledged without changing anything (kept in a metric label and in the log). */
export type IgnoreReason = 'unknown-target' | 'already-exists';

/**
 * A service's read model: `apply` folds one event into the state (deterministic, no I/O; it updates the state
 * in place, so replaying a long log stays linear), `react` returns the events the service emits in reaction.
 */
export interface Projection<State> {
  initial(): State;
  /**
   * The types `apply` and `react` act on. The bus skips events of other types, or holds them back for a
   * moment while `onApplied` has listeners (docs/event-bus.md, "Deliveries of the types a subscriber acts
   * on"); a command's own event must be of one of them to carry its view. Left out: all.
   */
  types?: readonly KnownEventType[];
  apply(state: State, event: BlogEvent): IgnoreReason | void;
  react?(state: State, event: BlogEvent): Array<Pick<OutgoingEvent, 'type' | 'data'>>;
}

/** `<trigger id>/<reaction type>`: the same trigger always yields the same id, so the bus stores it once. */
export function derivedEventId(trigger: IncomingEvent, reactionType: string): string {
  const triggerId =
    trigger.id ??
    'sha1-' +
      createHash('sha1')
        .update(JSON.stringify([trigger.type, trigger.data]))
        .digest('hex')
        .slice(0, 16);
  return `${triggerId}/${reactionType}`;
}

/** What the bus says with a delivery (docs/event-bus.md, "Reactions in the answer" and after). */
export interface DeliveryHeaders {
  /** `X-Events-Reply: accept`: the answer may carry the reactions. */
  replyAccepted?: boolean;
  /** `X-Events-Cursor`: the bus has every event up to it handled, and the reactions answered to them. */
  busCursor?: number;
  /** `X-Events-Through`: the seqs after `busCursor` up to it that are not delivered are skipped types. */
  through?: number;
}
