import type { IncomingEvent, OutgoingEvent } from './events.js';

// A service's own events that the bus passed over in its delivery loop, applied from the publish's answer
// instead of a delivery back (docs/event-bus.md, "A publisher's own events").

/** One of this service's events, as it published it, with the seq the bus gave it. */
export type OwnEvent = IncomingEvent & { seq: number; id: string };

/**
 * A service publishing as one of the bus's subscribers: what a transport that can say so (HttpTransport)
 * sends with each publish, and where it hands the answer's own events.
 */
export interface OwnEventsPublisher {
  /** Its name among the bus's subscribers: `X-Events-Publisher`. */
  readonly name: string;
  /** `X-Events-Applied`, read as each request is built: every seq up to it is applied, or will be from answers already taken. */
  appliedSeq(): number;
  /**
   * The bus passed over the request's new events (`events`, each with its seq) in this subscriber's loop,
   * and every seq after `X-Events-Applied` up to `passedThrough` is of a type it skips: it must apply them.
   * Called before the publishes resolve.
   */
  passedOver(passedThrough: number, events: OwnEvent[]): void;
}

/** The events of a request the bus stored now: those after `passedThrough`, with their seqs. */
export function eventsAfter(
  passedThrough: number,
  events: (OutgoingEvent & { id: string })[],
  stored: { seq: number }[],
): OwnEvent[] {
  const own: OwnEvent[] = [];
  events.forEach((event, index) => {
    const seq = stored[index]!.seq;
    if (seq > passedThrough) own.push(Object.assign({}, event, { seq }));
  });
  return own;
}

/**
 * The own events handed over by publishes' answers and not yet applied, by seq: applied in their turn in
 * the subscriber's queue, or in place of a pass over their seq (`Subscriber.passOver`).
 */
export class OwnEvents {
  private readonly bySeq = new Map<number, OwnEvent>();
  /** The last seq an answer handed over: every seq up to it is applied once the queue reaches it. */
  private through = 0;

  add(events: OwnEvent[]): void {
    for (const event of events) {
      this.bySeq.set(event.seq, event);
      this.through = Math.max(this.through, event.seq);
    }
  }

  /** What to tell the bus as applied: `appliedSeq`, or beyond it what the queue will apply from answers. */
  appliedOrQueued(appliedSeq: number): number {
    return Math.max(appliedSeq, this.through);
  }

  /** Those with `afterSeq < seq <= toSeq`, in seq order. */
  between(afterSeq: number, toSeq: number): OwnEvent[] {
    if (this.bySeq.size === 0) return [];
    const found = [...this.bySeq.values()].filter((event) => event.seq > afterSeq && event.seq <= toSeq);
    return found.sort((a, b) => a.seq - b.seq);
  }

  /** Forgets those at or below `appliedSeq`: applied. */
  forget(appliedSeq: number): void {
    for (const seq of this.bySeq.keys()) if (seq <= appliedSeq) this.bySeq.delete(seq);
  }
}
