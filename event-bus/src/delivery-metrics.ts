import { Counter, Gauge, Histogram } from 'prom-client';
import type { Metrics } from '@blog/common';
import type { EventStore } from './store.js';

export type DeliveryMetrics = ReturnType<typeof createDeliveryMetrics>;

/** The counters and the histogram the delivery loops update as they go. */
export function createDeliveryMetrics(metrics: Metrics) {
  const registers = [metrics.registry];
  return {
    deliveries: new Counter({
      name: 'eventbus_deliveries_total',
      help: 'POSTs to subscribers, by outcome: delivered, failed (retried), dead-letter, unacked, batch-rejected, reactions-rejected',
      labelNames: ['subscriber', 'outcome'] as const,
      registers,
    }),
    duration: new Histogram({
      name: 'eventbus_delivery_duration_seconds',
      help: 'Time from sending a POST to a subscriber to its answer (or error)',
      labelNames: ['subscriber'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 10],
      registers,
    }),
    passes: new Counter({
      name: 'eventbus_cursor_passes_total',
      help: 'Moves of a cursor past events of types the subscriber skips, without a POST',
      labelNames: ['subscriber'] as const,
      registers,
    }),
    ownPasses: new Counter({
      name: 'eventbus_own_events_passed_total',
      help: "Publishes whose events the bus passed over in their publisher's own loop, applied from the answer",
      labelNames: ['subscriber'] as const,
      registers,
    }),
    deadLetters: new Counter({
      name: 'eventbus_dead_letters_total',
      help: 'Events a subscriber rejected with a 4xx, set aside so they do not block the rest',
      labelNames: ['subscriber'] as const,
      registers,
    }),
  };
}

export type SubscriberMetrics = ReturnType<typeof subscriberMetrics>;

/** One subscriber's series, their labels made once: its delivery loop updates them at every POST. */
export function subscriberMetrics(metrics: DeliveryMetrics, subscriber: string) {
  const labels = { subscriber };
  const outcomeLabels = new Map<string, { subscriber: string; outcome: string }>();
  // Zero-valued series from the start, so a dashboard shows the subscriber before anything goes wrong.
  metrics.deadLetters.inc(labels, 0);
  return {
    count(outcome: string): void {
      let withOutcome = outcomeLabels.get(outcome);
      if (!withOutcome) outcomeLabels.set(outcome, (withOutcome = { subscriber, outcome }));
      metrics.deliveries.inc(withOutcome);
    },
    postTook: (seconds: number) => metrics.duration.observe(labels, seconds),
    passed: () => metrics.passes.inc(labels),
    passedOwn: () => metrics.ownPasses.inc(labels),
    deadLettered: () => metrics.deadLetters.inc(labels),
  };
}

/**
 * The head of the log and each subscriber's lag, computed when /metrics is scraped, so publishing and
 * delivering pay nothing for them.
 */
export function registerLagGauges(
  metrics: Metrics,
  store: EventStore,
  loops: readonly { name: string; cursor: number }[],
): void {
  new Gauge({
    name: 'eventbus_subscriber_lag',
    help: 'Events stored but not yet delivered to the subscriber (head seq - cursor)',
    labelNames: ['subscriber'] as const,
    registers: [metrics.registry],
    collect() {
      const head = store.headSeq();
      for (const loop of loops) this.set({ subscriber: loop.name }, Math.max(0, head - loop.cursor));
    },
  });
  new Gauge({
    name: 'eventbus_head_seq',
    help: 'The seq of the last event stored',
    registers: [metrics.registry],
    collect() {
      this.set(store.headSeq());
    },
  });
}
