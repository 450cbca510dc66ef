import { randomUUID } from 'node:crypto';
import type {
  ConsumerInfo,
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { validateEvent, incomingEventSchema, type OutgoingEvent, type StoredEvent } from './events.js';
import { EVENT_MAX_BYTES, PAGE_MAX_BYTES } from './limits.js';
import type { Logger } from './logger.js';
import { sleep, TransportError, type EventPage, type EventTransport } from './transport.js';

/**
 * The event log on NATS JetStream (docs/event-bus.md, "The NATS JetStream transport"): one stream, whose
 * sequence is the `seq` of every event, a durable pull consumer per service for delivery, and an ordered
 * consumer for each replay. The services see the same `EventTransport` as over HTTP.
 */

export interface NatsTransportOptions {
  /** `nats://`, `tls://`, `ws://` or `wss://` (NATS_URL). */
  url: string;
  /** The stream's name (NATS_STREAM); its one subject is `<stream>.events`. */
  stream: string;
  /** Consumer failures and refused messages are logged here; nothing is logged without it. */
  log?: Logger;
  /** How long a publish, a JetStream API call or a replay may take before it fails. */
  timeoutMs?: number;
  /** The connection's name, as the NATS server's monitoring shows it. */
  name?: string;
  /**
   * EVENT_BUS_TOKEN: presented to the server, which then serves only clients that have it. nats.js takes it
   * as this option only (a token in the URL is ignored).
   */
  token?: string;
}

/** What the bus gateway needs beyond `{seq, id}`: whether the id was already stored. */
export interface PublishResult {
  seq: number;
  id: string;
  duplicate: boolean;
}

/** One durable consumer as `GET /subscribers` shows it. */
export interface ConsumerStatus {
  name: string;
  /** The highest stream seq below which everything is acknowledged (the consumer's ack floor). */
  cursor: number;
  /** Events not yet acknowledged: not yet delivered, plus delivered and awaiting their ack. */
  lag: number;
  pending: number;
  ackPending: number;
  /** Events delivered more than once and still unacknowledged: a handler failing on them. */
  failures: number;
}

/** JetStream keeps an id for this long: a publish retried within it is stored once (the design's 1 h). */
const DUPLICATE_WINDOW_MS = 60 * 60 * 1000;
/** How many messages a service's consumer asks the server for at a time, to hold ready for it. */
const CONSUME_BUFFER = 200;
/** The most messages handed to a consumer's handler in one call (one `receive`, one ack). */
const DELIVERY_BATCH = 200;
/** Redelivery after a failed handler: 100 ms doubling up to this, as the HTTP bus's RETRY_MAX_MS default. */
const NAK_DELAY_MAX_MS = 10_000;
/** A replay's consumer is deleted when done; should that be lost, the server drops it after this idle time. */
const REPLAY_CONSUMER_IDLE_MS = 30_000;
/** How many events one pull of a replay asks for, at most. */
const REPLAY_BATCH = 1000;
/**
 * How many bytes of messages one pull of a replay asks for, judged by the largest message it has read so
 * far (before the first, the largest event the bus takes): the messages of a pull arrive all at once.
 */
const REPLAY_PULL_BYTES = 1024 * 1024;

interface Connection {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/**
 * The NATS client libraries, loaded on first use: every service imports this module, and one on the HTTP
 * bus should not pay their load time at each start (about 50 ms of a query start of 2 s, measured).
 */
let natsLibraries:
  Promise<typeof import('@nats-io/transport-node') & typeof import('@nats-io/jetstream')> | undefined;
const loadNats = () =>
  (natsLibraries ??= Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]).then(
    ([transport, jetstream]) => ({ ...transport, ...jetstream }),
  ));

export class NatsTransport implements EventTransport {
  readonly url: string;
  readonly stream: string;
  readonly subject: string;
  private readonly log: Logger | undefined;
  private readonly timeoutMs: number;
  private readonly name: string | undefined;
  private readonly token: string | undefined;
  /** The connection, once made; a failed first attempt is forgotten, so the next call tries again. */
  private connecting: Promise<Connection> | undefined;
  /** false while the client is reconnecting: calls then fail at once instead of waiting for a timeout. */
  private connected = false;
  private closed = false;
  /** The running `consume` loops' message iterators, closed by `close`. */
  private readonly consumers = new Set<ConsumerMessages>();

  constructor(options: NatsTransportOptions) {
    this.url = options.url;
    this.stream = options.stream;
    this.subject = `${options.stream}.events`;
    this.log = options.log;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.name = options.name;
    this.token = options.token;
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
    const { js } = await this.connection();
    try {
      const ack = await js.publish(this.subject, body, { msgID: id, timeout: this.timeoutMs });
      return { seq: ack.seq, id, duplicate: ack.duplicate };
    } catch (err) {
      throw this.failure(err, `could not publish ${event.type} ${id}`);
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
  async headSeq(): Promise<number> {
    const { jsm } = await this.connection();
    try {
      return (await jsm.streams.info(this.stream)).state.last_seq;
    } catch (err) {
      throw this.failure(err, `could not read the stream ${this.stream}`);
    }
  }

  /**
   * The events with `afterSeq < seq <= throughSeq`, in order, in batches, read by one ordered consumer:
   * the next batch is asked for only when the caller wants it, so a slow reader holds one batch at a time.
   * A batch is one pull: at most `batch` events and about REPLAY_PULL_BYTES. It ends before the event that
   * would take its messages past `maxBytes` in all (the first event always comes).
   */
  async *read(
    afterSeq: number,
    throughSeq: number,
    batch = REPLAY_BATCH,
    maxBytes = Infinity,
  ): AsyncGenerator<StoredEvent[]> {
    if (throughSeq <= afterSeq) return;
    const { js } = await this.connection();
    let consumer;
    try {
      consumer = await js.consumers.get(this.stream, {
        opt_start_seq: afterSeq + 1,
        inactive_threshold: REPLAY_CONSUMER_IDLE_MS,
      });
    } catch (err) {
      throw this.failure(err, `could not read the stream ${this.stream}`);
    }
    try {
      // Nothing stored from there on (the stream was purged): nothing to wait for.
      if ((await consumer.info(true)).num_pending === 0) return;
      let taken = 0;
      let bytes = 0;
      let largest = 0;
      for (let last = afterSeq; last < throughSeq;) {
        const perPull = Math.max(1, Math.floor(REPLAY_PULL_BYTES / (largest || EVENT_MAX_BYTES)));
        const want = Math.min(batch, throughSeq - last, perPull);
        const events: StoredEvent[] = [];
        let end = false;
        let full = false;
        try {
          const messages = await consumer.fetch({
            max_messages: want,
            expires: Math.max(1000, this.timeoutMs),
          });
          for await (const msg of messages) {
            const size = msg.data.length;
            // Past the byte budget: the rest stays in the stream (the consumer is deleted below).
            if (taken > 0 && bytes + size > maxBytes) {
              full = true;
              break;
            }
            events.push(storedEvent(msg));
            taken++;
            bytes += size;
            largest = Math.max(largest, size);
            last = msg.seq;
            // `pending` is what the stream holds after this message: 0 means its end.
            end = msg.seq >= throughSeq || msg.info.pending === 0;
            if (end || events.length >= want) break;
          }
        } catch (err) {
          throw this.failure(err, `could not read the stream ${this.stream}`);
        }
        if (events.length > 0) yield events;
        else if (!full)
          throw new TransportError(
            `NATS at ${this.url} sent no events after seq ${last} in time`,
            false,
            'NATS',
          );
        if (end || full) return;
      }
    } finally {
      // Done with it: removed now rather than left to idle out.
      consumer.delete().catch(() => undefined);
    }
  }

  /**
   * Delivers every event of the stream to `handle`, in order, through the durable pull consumer
   * `consumerName`, in batches: each call gets every message already buffered (up to `DELIVERY_BATCH`),
   * without ever waiting to fill a batch, so one event alone is handed over at once. Once `handle` resolved,
   * the batch is acknowledged with one ack (the consumer acknowledges all: see `ensureConsumer`); if it
   * threw, nothing of the batch counts: every message is `nak`ed with a growing delay and JetStream
   * delivers it again. A message that is not a JSON event at all is terminated, with an error logged, since
   * no retry could help. A consumer made now starts at `startSeq` (the first seq the caller has not yet
   * handled; the stream's first by default). Runs until `close`, through any outage.
   */
  consume(consumerName: string, handle: (events: StoredEvent[]) => Promise<void>, startSeq = 1): void {
    const run = async () => {
      for (let attempt = 0; !this.closed; attempt++) {
        try {
          const { js, jsm } = await this.connection();
          await this.ensureConsumer(jsm, consumerName, startSeq);
          const consumer = await js.consumers.get(this.stream, consumerName);
          // abort_on_missing_resource: if the stream or consumer vanished (a NATS with a new, empty
          // store), the loop ends and this creates them again, rather than waiting forever. The client
          // calls back for each message as it reads them off the connection, all of a read at once, so
          // the queue holds every message that came while the batch before was being handled.
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
          this.consumers.add(messages);
          if (this.closed) await messages.close();
          attempt = 0;
          try {
            for await (const batch of queue.batches(DELIVERY_BATCH)) {
              // Closed: what is left is delivered again to the next process, after the ack wait.
              if (this.closed) break;
              await this.deliver(consumerName, batch, handle);
            }
          } finally {
            this.consumers.delete(messages);
          }
        } catch (err) {
          if (this.closed) return;
          const retryInMs = Math.min(NAK_DELAY_MAX_MS, 100 * 2 ** attempt);
          this.log?.warn(
            { err: (err as Error).message, consumer: consumerName, retryInMs },
            'consumer failed',
          );
          await sleep(retryInMs);
        }
      }
    };
    void run();
  }

  private async deliver(
    consumerName: string,
    batch: JsMsg[],
    handle: (events: StoredEvent[]) => Promise<void>,
  ): Promise<void> {
    const events: StoredEvent[] = [];
    const taken: JsMsg[] = [];
    for (const msg of batch) {
      const event = storedEvent(msg);
      const { issues } = validateEvent(incomingEventSchema, event);
      if (issues.length > 0) {
        this.log?.error(
          { consumer: consumerName, seq: msg.seq, issues, body: msg.string().slice(0, 300) },
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
      await handle(events);
    } catch (err) {
      const delays = taken.map((msg) => Math.min(NAK_DELAY_MAX_MS, 100 * 2 ** (msg.info.deliveryCount - 1)));
      this.log?.warn(
        {
          err: (err as Error).message,
          consumer: consumerName,
          seqs: `${taken[0]!.seq}..${taken.at(-1)!.seq}`,
          count: taken.length,
          retryInMs: Math.min(...delays),
        },
        'events not handled, delivered again later',
      );
      taken.forEach((msg, index) => settle(() => msg.nak(delays[index])));
      return;
    }
    // Acknowledging all: one ack of the highest seq covers the batch and every seq below it. That is
    // right because `handle` (the subscriber's receive) fills any gap before applying an event: once it
    // resolved, every event up to the batch's highest seq is applied and its reactions stored.
    const highest = taken.reduce((max, msg) => (msg.seq > max.seq ? msg : max));
    settle(() => highest.ack());
  }

  /** The durable consumers of the stream (the replays' ordered consumers are not listed). */
  async consumerStatus(): Promise<ConsumerStatus[]> {
    const { jsm } = await this.connection();
    const infos: ConsumerInfo[] = [];
    try {
      for await (const info of jsm.consumers.list(this.stream))
        if (info.config.durable_name) infos.push(info);
    } catch (err) {
      throw this.failure(err, `could not list the consumers of ${this.stream}`);
    }
    return infos
      .map((info) => ({
        name: info.name,
        cursor: info.ack_floor.stream_seq,
        lag: info.num_pending + info.num_ack_pending,
        pending: info.num_pending,
        ackPending: info.num_ack_pending,
        failures: info.num_redelivered,
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Stops the consumers, then lets what is in flight finish (drain) and closes the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.consumers].map((messages) => messages.close().catch(() => undefined)));
    const connection = await this.connecting?.catch(() => undefined);
    if (!connection || connection.nc.isClosed()) return;
    // drain waits for the server; if it is gone, do not wait for it longer than a timeout (whose timer is
    // cleared once drained: left running, it would keep a script's process alive for the whole timeout).
    const drained = connection.nc.drain().catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>(
      (resolve) => (timer = setTimeout(() => resolve('timeout'), this.timeoutMs)),
    );
    const outcome = await Promise.race([drained, timedOut]).finally(() => clearTimeout(timer));
    if (outcome === 'timeout') await connection.nc.close();
  }

  /**
   * The connection, made on first use. The client then reconnects forever by itself; while it is away,
   * calls fail at once with a TransportError (a 503 for the routes), as they do when the HTTP bus is down.
   */
  private async connection(): Promise<Connection> {
    if (this.closed) throw new TransportError('the NATS transport is closed', false, 'NATS');
    this.connecting ??= this.open().catch((err: unknown) => {
      this.connecting = undefined;
      throw this.failure(err, 'unreachable');
    });
    const connection = await this.connecting;
    if (!this.connected) {
      throw new TransportError(`NATS at ${this.url} unreachable (reconnecting)`, false, 'NATS');
    }
    return connection;
  }

  private async open(): Promise<Connection> {
    const ws = /^wss?:/i.test(this.url);
    if (ws && typeof (globalThis as { WebSocket?: unknown }).WebSocket !== 'function') {
      throw new TransportError(
        `${this.url}: a ws:// or wss:// NATS_URL needs Node 22 or later (WebSocket)`,
        false,
        'NATS',
      );
    }
    const { connect, wsconnect, jetstreamManager } = await loadNats();
    const nc = await (ws ? wsconnect : connect)({
      servers: this.url,
      name: this.name,
      token: this.token,
      timeout: this.timeoutMs,
      // Reconnect forever: NATS may be down for longer than any count we could pick.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 1000,
      // Notice a server that vanished without closing the connection within about half a minute.
      pingInterval: 10_000,
      maxPingOut: 2,
    });
    try {
      const jsm = await jetstreamManager(nc, { timeout: this.timeoutMs });
      await this.ensureStream(jsm);
      this.connected = true;
      void this.watch(nc, jsm);
      return { nc, js: jsm.jetstream(), jsm };
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  /** Follows the connection's state; after a reconnect, makes sure the stream is still there. */
  private async watch(nc: NatsConnection, jsm: JetStreamManager): Promise<void> {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect') {
        this.connected = false;
        this.log?.warn({ url: this.url }, 'NATS connection lost, reconnecting');
      } else if (status.type === 'reconnect') {
        this.connected = true;
        this.log?.info({ url: this.url }, 'NATS connection back');
        // A server that came back with an empty store has lost the stream: the first client makes it again.
        this.ensureStream(jsm).catch((err: Error) =>
          this.log?.error({ err: err.message }, 'could not make sure the stream exists'),
        );
      }
    }
  }

  /**
   * Creates the stream if it is missing. Every client does this, so the start order does not matter; when
   * two race, JetStream answers the second as if it had created it (the same configuration). A stream
   * made earlier with another configuration is used as it is, if it holds our subject.
   */
  private async ensureStream(jsm: JetStreamManager): Promise<void> {
    const { StorageType, nanos } = await loadNats();
    const config = {
      name: this.stream,
      subjects: [this.subject],
      storage: StorageType.File,
      duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    };
    try {
      await jsm.streams.add(config);
    } catch (err) {
      const existing = await jsm.streams.info(this.stream).catch(() => undefined);
      if (!existing?.config.subjects?.includes(this.subject)) throw err;
      this.log?.warn(
        { stream: this.stream, err: (err as Error).message },
        'the stream exists with another configuration: using it as it is',
      );
    }
  }

  /**
   * A durable pull consumer that acknowledges all (an ack covers every seq up to it) and, when made now,
   * starts at `startSeq`. One made by an earlier version, acknowledging explicitly, is deleted and made
   * again so (a consumer's ack policy cannot be changed in place); nothing is lost, since the caller has
   * handled everything before `startSeq`. One that already acknowledges all is used as it is.
   */
  private async ensureConsumer(jsm: JetStreamManager, name: string, startSeq: number): Promise<void> {
    const { AckPolicy, DeliverPolicy } = await loadNats();
    const existing = await this.consumerInfo(jsm, name);
    if (existing?.config.ack_policy === AckPolicy.All) return;
    if (existing) {
      this.log?.info(
        { consumer: name, ackPolicy: existing.config.ack_policy, startSeq },
        'the consumer acknowledges explicitly: made again to acknowledge all, from the first seq not yet handled',
      );
      await jsm.consumers.delete(this.stream, name).catch(async (err: unknown) => {
        // Another process of the service may have just done the same.
        if ((await this.consumerInfo(jsm, name))?.config.ack_policy !== AckPolicy.Explicit) return;
        throw err;
      });
    }
    try {
      await jsm.consumers.add(this.stream, {
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
      if ((await this.consumerInfo(jsm, name))?.config.ack_policy !== AckPolicy.All) throw err;
    }
  }

  /** The consumer's info, or undefined if there is no such consumer. */
  private async consumerInfo(jsm: JetStreamManager, name: string): Promise<ConsumerInfo | undefined> {
    const { JetStreamApiCodes, JetStreamApiError } = await loadNats();
    try {
      return await jsm.consumers.info(this.stream, name);
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.ConsumerNotFound)
        return undefined;
      throw err;
    }
  }

  /** Any failure as a TransportError (the 503s), saying whether NATS was unreachable or refused. */
  private failure(err: unknown, doing: string): TransportError {
    if (err instanceof TransportError) return err;
    const message = (err as Error).message ?? String(err);
    // JetStream answered and refused (a message too large, a bad configuration): repeating will not help.
    const refused =
      typeof (err as { code?: unknown }).code === 'number' && (err as { code: number }).code > 0;
    return new TransportError(`NATS at ${this.url}: ${doing} (${message})`, refused, 'NATS');
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

/**
 * A stream message as the services see an event: `{seq, id, time, ...body}`, the seq and time the
 * stream's. A body that is not a JSON object stays visible as `{seq, id, time, body}`, which no
 * validation accepts, so a replay skips it with a warning and a consumer terminates it.
 */
function storedEvent(msg: JsMsg): StoredEvent {
  let body: unknown;
  try {
    body = msg.json();
  } catch {
    body = undefined;
  }
  const fields: Record<string, unknown> =
    typeof body === 'object' && body !== null && !Array.isArray(body) ? { ...body } : { body: msg.string() };
  const { id, seq: _seq, time: _time, ...rest } = fields;
  return {
    seq: msg.seq,
    id: typeof id === 'string' ? id : msg.headers?.get('Nats-Msg-Id') || `seq-${msg.seq}`,
    time: msg.timestamp,
    ...rest,
  } as StoredEvent;
}
