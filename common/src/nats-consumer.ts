import type { ConsumerInfo, ConsumerMessages, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { backoffDelay } from './backoff.js';
import { incomingEventSchema, validateEvent, type StoredEvent } from './events.js';
import type { NatsClient } from './nats-connection.js';
import { loadNats } from './nats-libraries.js';
import { storedEvent } from './nats-stream.js';
import { sleep } from './transport.js';

/** How many messages a service's consumer asks the server for at a time, to hold ready for it. */
const CONSUME_BUFFER = 200;
/** The most messages handed to a consumer's handler in one call (one `receive`, one ack). */
const DELIVERY_BATCH = 200;
/**
 * Redelivery after a failed handler, and a new try after a failed consumer: 100 ms doubling up to 10 s,
 * as the HTTP bus's RETRY_MAX_MS default.
 */
const REDELIVERY_BACKOFF = { firstMs: 100, maxMs: 10_000 };

export type EventHandler = (events: StoredEvent[]) => Promise<void>;

/**
 * A service's durable pull consumer of the stream (see `NatsTransport.consume`): `run` delivers every
 * event to `handle` until the client is closed, through any outage, and `stop` ends its message iterator.
 */
export class DurableConsumer {
  /** The message iterator while one runs, closed by `stop`. */
  private messages: ConsumerMessages | undefined;

  constructor(
    private readonly client: NatsClient,
    private readonly name: string,
    private readonly handle: EventHandler,
    private readonly startSeq: number,
  ) {}

  async run(): Promise<void> {
    for (let attempt = 0; !this.client.closed; attempt++) {
      try {
        await this.consumeOnce(() => (attempt = 0));
      } catch (err) {
        if (this.client.closed) return;
        const retryInMs = backoffDelay(attempt, REDELIVERY_BACKOFF);
        this.client.log?.warn(
          { err: (err as Error).message, consumer: this.name, retryInMs },
          'consumer failed',
        );
        await sleep(retryInMs);
      }
    }
  }

  async stop(): Promise<void> {
    await this.messages?.close().catch(() => undefined);
  }

  /** Makes sure the consumer exists and delivers its messages until they end; `started` once they flow. */
  private async consumeOnce(started: () => void): Promise<void> {
    const { js, jsm } = await this.client.jetStream();
    await ensureConsumer(this.client, jsm, this.name, this.startSeq);
    const consumer = await js.consumers.get(this.client.stream, this.name);
    // abort_on_missing_resource: if the stream or consumer vanished (a NATS with a new, empty store), the
    // loop ends and this creates them again, rather than waiting forever. The client calls back for each
    // message as it reads them off the connection, all of a read at once, so the queue holds every message
    // that came while the batch before was being handled.
    const queue = new DeliveryQueue();
    const messages = await consumer.consume({
      max_messages: CONSUME_BUFFER,
      abort_on_missing_resource: true,
      callback: queue.push,
    });
    void messages.closed().then(
      (err) => queue.end(err ?? undefined),
      (err: unknown) => queue.end(err),
    );
    this.messages = messages;
    if (this.client.closed) await messages.close();
    started();
    try {
      for await (const batch of queue.batches(DELIVERY_BATCH)) {
        // Closed: what is left is delivered again to the next process, after the ack wait.
        if (this.client.closed) break;
        await this.deliver(batch);
      }
    } finally {
      this.messages = undefined;
    }
  }

  /**
   * Hands the batch's events to `handle`; a message that is not a JSON event is terminated. Once `handle`
   * resolved, one ack of the highest seq covers the batch; if it threw, every message is `nak`ed.
   */
  private async deliver(batch: JsMsg[]): Promise<void> {
    const events: StoredEvent[] = [];
    const taken: JsMsg[] = [];
    for (const msg of batch) {
      const event = storedEvent(msg);
      const { issues } = validateEvent(incomingEventSchema, event);
      if (issues.length > 0) {
        this.client.log?.error(
          { consumer: this.name, seq: msg.seq, issues, body: msg.string().slice(0, 300) },
          'a message of the stream is not a JSON event: terminated, it will not be delivered again',
        );
        settle(() => msg.term());
        continue;
      }
      events.push(event);
      taken.push(msg);
    }
    if (taken.length === 0) return;
    try {
      await this.handle(events);
    } catch (err) {
      this.deliverAgainLater(taken, err);
      return;
    }
    // Acknowledging all: one ack of the highest seq covers the batch and every seq below it. That is
    // right because `handle` (the subscriber's receive) fills any gap before applying an event: once it
    // resolved, every event up to the batch's highest seq is applied and its reactions stored.
    const highest = taken.reduce((max, msg) => (msg.seq > max.seq ? msg : max));
    settle(() => highest.ack());
  }

  /** Nothing of a failed batch counts: each message is `nak`ed with a delay growing with its deliveries. */
  private deliverAgainLater(taken: JsMsg[], err: unknown): void {
    const delays = taken.map((msg) => backoffDelay(msg.info.deliveryCount - 1, REDELIVERY_BACKOFF));
    this.client.log?.warn(
      {
        err: (err as Error).message,
        consumer: this.name,
        seqs: `${taken[0]!.seq}..${taken.at(-1)!.seq}`,
        count: taken.length,
        retryInMs: Math.min(...delays),
      },
      'events not handled, delivered again later',
    );
    taken.forEach((msg, index) => settle(() => msg.nak(delays[index])));
  }
}

/**
 * A durable pull consumer that acknowledges all (an ack covers every seq up to it) and, when made now,
 * starts at `startSeq`. One made by an earlier version, acknowledging explicitly, is deleted and made
 * again so (a consumer's ack policy cannot be changed in place); nothing is lost, since the caller has
 * handled everything before `startSeq`. One that already acknowledges all is used as it is.
 */
async function ensureConsumer(
  client: NatsClient,
  jsm: JetStreamManager,
  name: string,
  startSeq: number,
): Promise<void> {
  const { AckPolicy, DeliverPolicy } = await loadNats();
  const existing = await consumerInfo(jsm, client.stream, name);
  if (existing?.config.ack_policy === AckPolicy.All) return;
  if (existing) {
    client.log?.info(
      { consumer: name, ackPolicy: existing.config.ack_policy, startSeq },
      'the consumer acknowledges explicitly: made again to acknowledge all, from the first seq not yet handled',
    );
    await jsm.consumers.delete(client.stream, name).catch(async (err: unknown) => {
      // Another process of the service may have just done the same.
      if ((await consumerInfo(jsm, client.stream, name))?.config.ack_policy !== AckPolicy.Explicit) return;
      throw err;
    });
  }
  try {
    await jsm.consumers.add(client.stream, {
      durable_name: name,
      ack_policy: AckPolicy.All,
      ...(startSeq > 1
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: startSeq }
        : { deliver_policy: DeliverPolicy.All }),
      // Never give up on an event: a handler fails only while something it needs is down.
      max_deliver: -1,
    });
  } catch (err) {
    // Made meanwhile by another process of the service, from its own start: that one is used.
    if ((await consumerInfo(jsm, client.stream, name))?.config.ack_policy !== AckPolicy.All) throw err;
  }
}

/** The consumer's info, or undefined if there is no such consumer. */
async function consumerInfo(
  jsm: JetStreamManager,
  stream: string,
  name: string,
): Promise<ConsumerInfo | undefined> {
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

  readonly push = (msg: JsMsg): void => {
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

/**
 * Sends an ack, nak or term. On a connection closing under it this throws; the server then delivers the
 * message again after its ack wait, which costs a duplicate and loses nothing.
 */
function settle(send: () => void): void {
  try {
    send();
  } catch {
    // see above
  }
}
