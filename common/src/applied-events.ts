import type { IncomingEvent } from './events.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

// What follows each event a subscriber applies: the metric, and whoever listens (Subscriber.onApplied).

/**
 * Events applied, by type, added to `events_applied_total` once per run of events applied together (a
 * page, a delivery), since the metric hashes its labels on every addition; in a microtask, so before any
 * scrape can read it.
 */
export class AppliedCount {
  private readonly uncounted = new Map<string, number>();

  constructor(private readonly eventsApplied: Metrics['eventsApplied']) {}

  add(type: string): void {
    if (this.uncounted.size === 0) queueMicrotask(() => this.addToMetric());
    this.uncounted.set(type, (this.uncounted.get(type) ?? 0) + 1);
  }

  private addToMetric(): void {
    for (const [type, count] of this.uncounted) this.eventsApplied.inc({ type }, count);
    this.uncounted.clear();
  }
}

/** Those told of every event applied, in log order; one that throws is logged and changes nothing else. */
export class AppliedListeners {
  private readonly listeners = new Set<(event: IncomingEvent) => void>();

  constructor(private readonly log: Logger) {}

  get size(): number {
    return this.listeners.size;
  }

  /** Adds `listener`; returns a function that removes it. */
  add(listener: (event: IncomingEvent) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  notify(event: IncomingEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ err, type: event.type, seq: event.seq }, 'an onApplied listener failed');
      }
    }
  }
}
