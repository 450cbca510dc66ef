import { bearerHeader, EventSocketClient, type Logger, type Metrics } from '@blog/common';
import { createDeliveryMetrics, registerLagGauges } from './delivery-metrics.js';
import { actsOnAny } from './delivery-plan.js';
import type { StoreReactions } from './delivery-reactions.js';
import { SubscriberLoop, type SubscriberConfig, type SubscriberStatus } from './delivery.js';
import type { Publisher } from './own-events.js';
import type { EventStore } from './store.js';

export interface DeliveryOptions {
  store: EventStore;
  log: Logger;
  metrics: Metrics;
  /** The cap of the exponential backoff between retries (RETRY_MAX_MS). */
  retryMaxMs: number;
  /** How long events a subscriber does not act on may wait for company (default DEFER_MAX_MS). */
  deferMaxMs?: number;
  /** Stores the reactions a subscriber sent back in its answer (`{"events": [...]}`). */
  storeReactions: StoreReactions;
  /** EVENT_BUS_TOKEN: sent with every delivery as `Authorization: Bearer <token>`, when set. */
  token?: string;
}

/** All the subscribers' loops, and the one HTTP client they share. */
export class Deliveries {
  readonly loops: SubscriberLoop[];
  // A delivery goes as a message on the subscriber's socket where it takes one, else as a POST on a
  // keep-alive connection: either way, no TCP handshake per event (docs/event-bus.md, "The event path's socket").
  private readonly client = new EventSocketClient();

  constructor(
    subscribers: SubscriberConfig[],
    private readonly options: DeliveryOptions,
  ) {
    const context = {
      store: options.store,
      client: this.client,
      metrics: createDeliveryMetrics(options.metrics),
      retryMaxMs: options.retryMaxMs,
      storeReactions: options.storeReactions,
      log: options.log,
      deferMaxMs: options.deferMaxMs,
      authorization: bearerHeader(options.token),
    };
    this.loops = subscribers.map((subscriber) => new SubscriberLoop(subscriber, context));
    registerLagGauges(options.metrics, options.store, this.loops);
  }

  start(): void {
    for (const loop of this.loops) loop.start();
  }

  /**
   * Events of `types` were stored: the loops of subscribers that act on one of them go at once; the others,
   * which will only pass over them, once the I/O of this turn is done, so that their reads of the log are
   * not on the way of the deliveries that matter.
   */
  wakeAll(types?: ReadonlySet<string>): void {
    let passing = false;
    for (const loop of this.loops) {
      if (!types || actsOnAny(loop, types)) loop.wake();
      else passing = true;
    }
    if (passing)
      setImmediate(() => {
        for (const loop of this.loops) loop.wake();
      });
  }

  /**
   * The loop of the subscriber that published the events `first`..`last` passes over them, if it certainly
   * applies them from the answer (`SubscriberLoop.passOwnEvents`): then the seq after which they came.
   */
  passOwnEvents(publisher: Publisher, { first, last }: { first: number; last: number }): number | undefined {
    const loop = this.loops.find((candidate) => candidate.name === publisher.name);
    return loop?.passOwnEvents(publisher.appliedSeq, first, last) ? first - 1 : undefined;
  }

  status(): SubscriberStatus[] {
    const head = this.options.store.headSeq();
    return this.loops.map((loop) => loop.status(head));
  }

  async stop(): Promise<void> {
    const stopped = Promise.all(this.loops.map((loop) => loop.stop()));
    // Closing the connections cuts short the POSTs in flight (the loops send them without an abort signal).
    this.client.close();
    await stopped;
  }
}
