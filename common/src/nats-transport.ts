import { randomUUID } from 'node:crypto';
import type { OutgoingEvent, StoredEvent } from './events.js';
import { PAGE_MAX_BYTES } from './limits.js';
import { NatsClient, type NatsTransportOptions } from './nats-connection.js';
import { DurableConsumer, type EventHandler } from './nats-consumer.js';
import { readStream, REPLAY_BATCH, streamHead } from './nats-stream.js';
import type { EventPage, EventTransport } from './transport.js';

export { NatsClient, type JetStreamHandles, type NatsTransportOptions } from './nats-connection.js';

/**
 * The event log on NATS JetStream (docs/event-bus.md, "The NATS JetStream transport"): one stream, whose
 * sequence is the `seq` of every event, a durable pull consumer per service for delivery, and an ordered
 * consumer for each replay. The services see the same `EventTransport` as over HTTP.
 */

/** What the bus gateway needs beyond `{seq, id}`: whether the id was already stored. */
export interface PublishResult {
  seq: number;
  id: string;
  duplicate: boolean;
}

export class NatsTransport implements EventTransport {
  /** The connection and its stream; the bus gateway reads the stream's consumers through it. */
  readonly client: NatsClient;
  /** The running `consume` loops, stopped by `close`. */
  private readonly consumers = new Set<DurableConsumer>();

  constructor(options: NatsTransportOptions) {
    this.client = new NatsClient(options);
  }

  get url(): string {
    return this.client.url;
  }

  get stream(): string {
    return this.client.stream;
  }

  get subject(): string {
    return this.client.subject;
  }

  /**
   * Stores the event once per `id` (JetStream's `Nats-Msg-Id` deduplication, within the duplicate window)
   * and resolves once the stream acknowledged it, with its stream sequence; a duplicate resolves with the
   * first one's. Publishes are not grouped: each is its own message, and those made one after the other
   * travel in that order on the one connection, so they are stored in that order, pipelined.
   */
  async publish(event: OutgoingEvent): Promise<PublishResult> {
    // seq and time are the stream's to assign: a publisher's own copies are dropped, as the HTTP bus does.
    const { seq: _seq, time: _time, id = randomUUID(), ...rest } = event;
    const body = JSON.stringify({ ...rest, id });
    const { js } = await this.client.jetStream();
    try {
      const ack = await js.publish(this.subject, body, { msgID: id, timeout: this.client.timeoutMs });
      return { seq: ack.seq, id, duplicate: ack.duplicate };
    } catch (err) {
      throw this.client.failure(err, `could not publish ${event.type} ${id}`);
    }
  }

  /**
   * At most `limit` events with `seq > afterSeq`, fewer once their messages fill PAGE_MAX_BYTES, bounded by
   * the stream's last seq at the time of the call (`headSeq`): it never waits for events still to come, and
   * answers no events after a single request when there are none.
   */
  async fetchAfter(afterSeq: number, limit: number): Promise<EventPage> {
    const head = await this.headSeq();
    const events: StoredEvent[] = [];
    const through = Math.min(head, afterSeq + limit);
    for await (const batch of this.read(afterSeq, through, REPLAY_BATCH, PAGE_MAX_BYTES))
      events.push(...batch);
    return { events, headSeq: head };
  }

  /** The stream's last seq (0 when empty). */
  headSeq(): Promise<number> {
    return streamHead(this.client);
  }

  /** The events with `afterSeq < seq <= throughSeq`, in order, in batches (see `readStream`). */
  read(afterSeq: number, throughSeq: number, batch = REPLAY_BATCH, maxBytes = Infinity) {
    return readStream(this.client, afterSeq, throughSeq, batch, maxBytes);
  }

  /**
   * Delivers every event of the stream to `handle`, in order, through the durable pull consumer
   * `consumerName`, in batches: each call gets every message already buffered, without ever waiting to
   * fill a batch, so one event alone is handed over at once. Once `handle` resolved, the batch is
   * acknowledged with one ack (the consumer acknowledges all); if it threw, nothing of the batch counts:
   * every message is `nak`ed with a growing delay and JetStream delivers it again. A message that is not a
   * JSON event at all is terminated, with an error logged, since no retry could help. A consumer made now
   * starts at `startSeq` (the first seq the caller has not yet handled; the stream's first by default).
   * Runs until `close`, through any outage.
   */
  consume(consumerName: string, handle: EventHandler, startSeq = 1): void {
    const consumer = new DurableConsumer(this.client, consumerName, handle, startSeq);
    this.consumers.add(consumer);
    void consumer.run().finally(() => this.consumers.delete(consumer));
  }

  /** Stops the consumers, then lets what is in flight finish (drain) and closes the connection. */
  async close(): Promise<void> {
    await this.client.close(() => Promise.all([...this.consumers].map((consumer) => consumer.stop())));
  }
}
