import { createHash, randomUUID } from 'node:crypto';
import type { OutgoingEvent, StoredEvent } from './events.js';
import { PAGE_MAX_BYTES } from './limits.js';
import { NatsClient, type NatsTransportOptions } from './nats-connection.js';
import { loadNats } from './nats-libraries.js';
import { ReplicaConsumer, type EventHandler } from './nats-consumer.js';
import { readStream, REPLAY_BATCH, streamHead } from './nats-stream.js';
import type { EventPage, EventTransport, PublishOptions } from './transport.js';

export {
  NatsClient,
  replicaName,
  type JetStreamHandles,
  type NatsTransportOptions,
} from './nats-connection.js';
export { LEGACY_DURABLE_IDLE_MS } from './nats-consumer.js';
export { REPLAY_CONSUMER_PREFIX } from './nats-stream.js';

/**
 * The event log on NATS JetStream (docs/event-bus.md, "The NATS JetStream transport" and "Scaling out on
 * NATS"): one stream, whose sequence is the `seq` of every event, an ordered consumer per replica for
 * delivery, and one for each replay. The services see the same `EventTransport` as over HTTP.
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
  private readonly consumers = new Set<ReplicaConsumer>();

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
   *
   * With `once`, the id is stored once for ever, not only within the window: the event goes to a subject
   * of its own (`<stream>.events.once.<sha-256 of the id>`) with an expected last subject sequence of 0, so
   * the stream stores it only while that subject is empty; a publisher that loses resolves with the one
   * stored (`duplicate: true`).
   */
  async publish(event: OutgoingEvent, options: PublishOptions = {}): Promise<PublishResult> {
    // seq and time are the stream's to assign: a publisher's own copies are dropped, as the HTTP bus does.
    const { seq: _seq, time: _time, id = randomUUID(), ...rest } = event;
    const body = JSON.stringify({ ...rest, id });
    const { js, jsm } = await this.client.jetStream();
    const subject = options.once ? this.onceSubject(id) : this.subject;
    try {
      const ack = await js.publish(subject, body, {
        msgID: id,
        timeout: this.client.timeoutMs,
        ...(options.once ? { expect: { lastSubjectSequence: 0 } } : {}),
      });
      return { seq: ack.seq, id, duplicate: ack.duplicate };
    } catch (err) {
      if (options.once && (await isStoredAlready(err))) {
        const stored = await jsm.streams.getMessage(this.stream, { last_by_subj: subject }).catch(() => null);
        if (stored) return { seq: stored.seq, id: storedId(stored, id), duplicate: true };
      }
      throw this.client.failure(err, `could not publish ${event.type} ${id}`);
    }
  }

  /** The subject that holds the event of this id, and nothing else, when it is published `once`. */
  onceSubject(id: string): string {
    return `${this.subject}.once.${createHash('sha256').update(id).digest('hex')}`;
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
   * Delivers every event of the stream from `startSeq` on to `handle`, in order, in batches, through an
   * ordered consumer of this replica's own (named `<consumerName>-<HOSTNAME>-...`), without
   * acknowledgements: each call gets every message already buffered, without ever waiting to fill a batch,
   * so one event alone is handed over at once. If `handle` throws, the consumer is closed and, after a
   * growing delay, a new one reads again from the first seq not handled. A message that is not a JSON event
   * is left out, with an error logged. A durable consumer named `consumerName` (an older version's) is
   * given an inactivity limit, so JetStream deletes it once nothing reads it. Runs until `close`, through
   * any outage.
   */
  consume(consumerName: string, handle: EventHandler, startSeq = 1): void {
    const consumer = new ReplicaConsumer(this.client, consumerName, handle, startSeq);
    this.consumers.add(consumer);
    void consumer.run().finally(() => this.consumers.delete(consumer));
  }

  /** Stops the consumers, then lets what is in flight finish (drain) and closes the connection. */
  async close(): Promise<void> {
    await this.client.close(() => Promise.all([...this.consumers].map((consumer) => consumer.stop())));
  }
}

/** JetStream refused a `once` publish because its subject holds a message already. */
async function isStoredAlready(err: unknown): Promise<boolean> {
  const { JetStreamApiCodes, JetStreamApiError } = await loadNats();
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

/** The id in a stored message's body, or `fallback` when it has none. */
function storedId(stored: { json<T>(): T }, fallback: string): string {
  try {
    const { id } = stored.json<{ id?: unknown }>();
    return typeof id === 'string' ? id : fallback;
  } catch {
    return fallback;
  }
}
