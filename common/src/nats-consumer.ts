import type { Consumer, ConsumerMessages, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { backoffDelay } from './backoff.js';
import { incomingEventSchema, validateEvent, type StoredEvent } from './events.js';
import { replicaName, type NatsClient } from './nats-connection.js';
import { loadNats } from './nats-libraries.js';
import { shortId, storedEvent } from './nats-stream.js';
import { sleep } from './transport.js';

/** How many messages a replica's consumer asks the server for at a time, to hold ready for it. */
const CONSUME_BUFFER = 200;
/** The most messages handed to the handler in one call (one `receive`, one outbox flush). */
const DELIVERY_BATCH = 200;
/**
 * How long one pull waits on the server. The server sends heartbeats at half of it, and two missed ones
 * make the client check its consumer and make it again elsewhere: a dead NATS node is noticed in seconds.
 */
const PULL_EXPIRES_MS = 2000;
/** No message nor heartbeat for this long: the consumer is given up and a new one made. */
const SILENCE_LIMIT_MS = 5000;
/**
 * A consumer no one reads (its replica was killed) is deleted by the server after this long. A running
 * replica pulls every PULL_EXPIRES_MS at least; one cut off from NATS for longer finds its consumer gone
 * when it is back, and makes a new one from the first seq it has not handled.
 */
const REPLICA_CONSUMER_IDLE_MS = 10_000;
/** A durable named after the service (an older version's) is deleted once no one has read it for this long. */
export const LEGACY_DURABLE_IDLE_MS = 10 * 60_000;
/** A new consumer after a failed handler or a failed consumer: 100 ms doubling up to 10 s. */
const RESTART_BACKOFF = { firstMs: 100, maxMs: 10_000 };

export type EventHandler = (events: StoredEvent[]) => Promise<void>;

/**
 * One replica's view of the stream (see `NatsTransport.consume`): an ordered consumer of its own, read
 * from the first seq not yet handled, without acknowledgements. `run` delivers every event to `handle`, in
 * order, until the client is closed, through any outage; `stop` ends it.
 */
export class ReplicaConsumer {
  /** What the consumers' names start with: `<service>-<HOSTNAME>`. */
  readonly namePrefix: string;
  /** The first seq not yet handled: where a new consumer starts. */
  private nextSeq: number;
  private current: { consumer: Consumer; messages: ConsumerMessages } | undefined;

  constructor(
    private readonly client: NatsClient,
    private readonly service: string,
    private readonly handle: EventHandler,
    startSeq: number,
  ) {
    this.namePrefix = replicaName(service);
    this.nextSeq = startSeq;
  }

  async run(): Promise<void> {
    let legacyChecked = false;
    for (let attempt = 0; !this.client.closed; attempt++) {
      try {
        if (!legacyChecked) legacyChecked = await this.limitLegacyDurable();
        // The delay grows while nothing gets handled, and starts again from 100 ms once a batch is.
        await this.consumeOnce(() => (attempt = 0));
      } catch (err) {
        if (this.client.closed) return;
        const retryInMs = backoffDelay(attempt, RESTART_BACKOFF);
        this.client.log?.warn(
          { err: (err as Error).message, consumer: this.namePrefix, nextSeq: this.nextSeq, retryInMs },
          'consumer stopped: a new one reads again from the first seq not handled',
        );
        await sleep(retryInMs);
      }
    }
  }

  /** Ends the message loop and deletes the consumer (the server would after REPLICA_CONSUMER_IDLE_MS). */
  async stop(): Promise<void> {
    const current = this.current;
    this.current = undefined;
    if (!current) return;
    await current.messages.close().catch(() => undefined);
    // Not waited for: with NATS away it would wait for a timeout, and the server deletes it anyway.
    current.consumer.delete().catch(() => undefined);
  }

  /**
   * One ordered consumer from `nextSeq`, its messages handed over until they end or `handle` throws;
   * `handled` after each batch handled.
   */
  private async consumeOnce(handled: () => void): Promise<void> {
    const { js } = await this.client.jetStream();
    // A name of its own each time: one left on a dead node must not be taken for this one.
    const consumer = await js.consumers.get(this.client.stream, {
      name_prefix: `${this.namePrefix}-${shortId()}`,
      opt_start_seq: this.nextSeq,
      inactive_threshold: REPLICA_CONSUMER_IDLE_MS,
    });
    // The client calls back for each message as it reads them off the connection, all of a read at once,
    // so the queue holds every message that came while the batch before was being handled. It makes the
    // consumer again by itself from the last seq it received if a message goes missing. A consumer or
    // stream gone ends it (abort_on_missing_resource): the new one is made here, with its idle limit.
    const queue = new DeliveryQueue();
    const messages = await consumer.consume({
      max_messages: CONSUME_BUFFER,
      expires: PULL_EXPIRES_MS,
      abort_on_missing_resource: true,
      callback: queue.push,
    });
    void messages.closed().then(
      (err) => queue.end(err ?? undefined),
      (err: unknown) => queue.end(err),
    );
    const stopWatching = watchHealth(messages, queue);
    this.current = { consumer, messages };
    if (this.client.closed) await this.stop();
    try {
      for await (const batch of queue.batches(DELIVERY_BATCH)) {
        if (this.client.closed) return;
        await this.deliver(batch);
        handled();
      }
      if (!this.client.closed) throw new Error('the consumer stopped delivering');
    } finally {
      stopWatching();
      await this.stop();
    }
  }

  /**
   * Hands the batch's events to `handle`; a message that is not a JSON event is left out, logged. Once
   * `handle` resolved, everything up to the batch's last seq is handled (it fills any gap before applying
   * an event). If it throws, this ends the consumer, and a new one reads again from the first seq not handled.
   */
  private async deliver(batch: JsMsg[]): Promise<void> {
    const events: StoredEvent[] = [];
    for (const msg of batch) {
      const event = storedEvent(msg);
      const { issues } = validateEvent(incomingEventSchema, event);
      if (issues.length === 0) {
        events.push(event);
        continue;
      }
      this.client.log?.error(
        { consumer: this.namePrefix, seq: msg.seq, issues, body: msg.string().slice(0, 300) },
        'a message of the stream is not a JSON event: skipped',
      );
    }
    if (events.length > 0) {
      try {
        await this.handle(events);
      } catch (err) {
        this.client.log?.warn(
          {
            err: (err as Error).message,
            seqs: `${events[0]!.seq}..${events.at(-1)!.seq}`,
            count: events.length,
          },
          'events not handled, read again later',
        );
        throw err;
      }
    }
    this.nextSeq = Math.max(this.nextSeq, batch.at(-1)!.seq + 1);
  }

  /**
   * A durable consumer named after the service is what older versions read. It is no longer read here:
   * it is given an inactivity limit, so JetStream deletes it once the last older process stops reading it.
   * True once done (or there is none).
   */
  private async limitLegacyDurable(): Promise<boolean> {
    const { jsm } = await this.client.jetStream();
    const { nanos } = await loadNats();
    const legacy = await durableInfo(jsm, this.client.stream, this.service);
    const limit = nanos(LEGACY_DURABLE_IDLE_MS);
    if (!legacy?.config.durable_name) return true;
    const current = legacy.config.inactive_threshold;
    if (current !== undefined && current > 0 && current <= limit) return true;
    await jsm.consumers.update(this.client.stream, this.service, { inactive_threshold: limit });
    this.client.log?.info(
      { consumer: this.service, inactiveMinutes: LEGACY_DURABLE_IDLE_MS / 60_000 },
      'a durable consumer of an older version: JetStream deletes it once no one has read it for that long',
    );
    return true;
  }
}

/**
 * Ends the delivery when the consumer stops answering: no message nor heartbeat for SILENCE_LIMIT_MS (its
 * NATS node died, or this client cannot reach NATS), heartbeats missed, or its stream gone. The client alone
 * would ask the dead node about its consumer until that node came back; a new consumer, from the first seq
 * not handled, is placed on a node that runs. Returns what stops the watch.
 */
function watchHealth(messages: ConsumerMessages, queue: DeliveryQueue): () => void {
  let lastSign = Date.now();
  let lastCheck = lastSign;
  const silent = (why: string) => queue.end(new Error(`the consumer stopped answering (${why})`));
  queue.onMessage = () => (lastSign = Date.now());
  void (async () => {
    for await (const status of messages.status()) {
      lastSign = Date.now();
      if (status.type === 'heartbeats_missed' || status.type === 'stream_not_found') silent(status.type);
    }
  })();
  const timer = setInterval(() => {
    const now = Date.now();
    // A check that comes late had this process busy, not NATS silent: the signs may be waiting unread.
    if (now - lastCheck > 2 * PULL_EXPIRES_MS) lastSign = now;
    lastCheck = now;
    if (now - lastSign > SILENCE_LIMIT_MS) silent(`nothing for ${SILENCE_LIMIT_MS / 1000} s`);
  }, PULL_EXPIRES_MS / 2);
  timer.unref();
  return () => clearInterval(timer);
}

/** The durable consumer's info, or undefined if there is no such consumer. */
async function durableInfo(jsm: JetStreamManager, stream: string, name: string) {
  const { JetStreamApiCodes, JetStreamApiError } = await loadNats();
  try {
    return await jsm.consumers.info(stream, name);
  } catch (err) {
    if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound) return undefined;
    throw err;
  }
}

/**
 * The messages a consumer received and not yet handed over, given out in batches, in order: each batch is
 * every message that came meanwhile, up to `max`. It never waits for more: with nothing buffered, the next
 * message alone is a batch, handed over as soon as it comes.
 */
class DeliveryQueue {
  private readonly messages: JsMsg[] = [];
  private wake: (() => void) | undefined;
  private ended: { err: unknown } | undefined;
  /** Told of each message as it comes (the health watch). */
  onMessage: (() => void) | undefined;

  readonly push = (msg: JsMsg): void => {
    this.onMessage?.();
    this.messages.push(msg);
    this.wake?.();
  };

  /** No more messages: `batches` ends, throwing `err` if there is one (what is left is delivered again). */
  end(err?: unknown): void {
    this.ended = { err };
    this.wake?.();
  }

  async *batches(max: number): AsyncGenerator<JsMsg[]> {
    while (true) {
      if (this.ended) {
        if (this.ended.err) throw this.ended.err;
        return;
      }
      if (this.messages.length > 0) {
        yield this.messages.splice(0, max);
        continue;
      }
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}
