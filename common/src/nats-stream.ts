import type { Consumer, JetStreamManager, JsMsg } from '@nats-io/jetstream';
import { randomBytes } from 'node:crypto';
import type { StoredEvent } from './events.js';
import { EVENT_MAX_BYTES } from './limits.js';
import type { Logger } from './logger.js';
import type { NatsClient } from './nats-connection.js';
import { loadNats } from './nats-libraries.js';
import { backoffDelay } from './backoff.js';
import { sleep, TransportError } from './transport.js';

/** JetStream keeps an id for this long: a publish retried within it is stored once (an hour). */
const DUPLICATE_WINDOW_MS = 60 * 60 * 1000;
/** A replay's consumer is deleted when done; should that be lost, the server drops it after this idle time. */
const REPLAY_CONSUMER_IDLE_MS = 30_000;
/** What the name of a replay's consumer starts with: the gateway's `GET /subscribers` leaves them out. */
export const REPLAY_CONSUMER_PREFIX = 'replay-';
/** How many events one pull of a replay asks for, at most. */
export const REPLAY_BATCH = 1000;
/**
 * How many bytes of messages one pull of a replay asks for, judged by the largest message it has read so
 * far (before the first, the largest event the bus takes): the messages of a pull arrive all at once.
 */
const REPLAY_PULL_BYTES = 1024 * 1024;

/** What `ensureStream` makes sure of. */
export interface StreamSettings {
  stream: string;
  /** `<stream>.events`; the stream also holds `<stream>.events.>` (the reactions, one subject each). */
  subject: string;
  /** How many nodes keep each message (NATS_REPLICAS). */
  replicas: number;
  log: Logger | undefined;
}

/**
 * Creates the stream if it is missing. Every client does this, so the start order does not matter; when
 * two race, JetStream answers the second as if it had created it (the same configuration). A stream made
 * earlier is used if it holds `<stream>.events`; it is updated in place if it lacks the reactions' subjects
 * or keeps another number of replicas (NATS_REPLICAS), its other settings left as they are.
 */
export async function ensureStream(jsm: JetStreamManager, settings: StreamSettings): Promise<void> {
  const { StorageType, nanos } = await loadNats();
  const { stream, subject, replicas, log } = settings;
  const subjects = [subject, `${subject}.>`];
  const config = {
    name: stream,
    subjects,
    storage: StorageType.File,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    num_replicas: replicas,
  };
  let existing;
  try {
    await jsm.streams.add(config);
    await streamPlaced(jsm, settings);
    return;
  } catch (err) {
    existing = await jsm.streams.info(stream).catch(() => undefined);
    if (!existing) throw replicationRefused(err, settings);
    if (!existing.config.subjects?.includes(subject)) throw err;
  }
  const missing = subjects.filter((wanted) => !existing.config.subjects?.includes(wanted));
  if (missing.length === 0 && existing.config.num_replicas === replicas) return;
  try {
    await jsm.streams.update(stream, {
      ...existing.config,
      subjects: [...(existing.config.subjects ?? []), ...missing],
      num_replicas: replicas,
    });
  } catch (err) {
    // Another client may have just made the same change.
    const now = await jsm.streams.info(stream).catch(() => undefined);
    const done =
      now?.config.num_replicas === replicas &&
      subjects.every((wanted) => now.config.subjects?.includes(wanted));
    if (!done) throw replicationRefused(err, settings);
  }
  log?.info(
    { stream, addedSubjects: missing, replicas, replicasBefore: existing.config.num_replicas },
    'the stream was updated in place: its subjects and replicas',
  );
  await streamPlaced(jsm, settings);
}

/** How long a client waits, at most, for a stream just made or changed to be on its nodes with a leader. */
const STREAM_PLACED_WAIT_MS = 10_000;

/**
 * Waits (a while at most) until a stream just made or changed has a leader and its replicas: until then, a
 * cluster answers its publishes with "no responders". A single server has it at once.
 */
async function streamPlaced(jsm: JetStreamManager, { stream, replicas }: StreamSettings): Promise<void> {
  const deadline = Date.now() + STREAM_PLACED_WAIT_MS;
  while (Date.now() < deadline) {
    const info = await jsm.streams.info(stream).catch(() => undefined);
    const cluster = info?.cluster;
    if (info && (!cluster || (cluster.leader && (cluster.replicas?.length ?? 0) >= replicas - 1))) return;
    await sleep(100);
  }
}

/** A stream JetStream would not make or update as asked: most often more replicas than the cluster has nodes. */
function replicationRefused(err: unknown, settings: StreamSettings): unknown {
  // Only an answer of JetStream (an error code), not a timeout, says it refused.
  const code = (err as { code?: unknown }).code;
  if (settings.replicas === 1 || !(typeof code === 'number' && code > 0)) return err;
  return new TransportError(
    `NATS could not keep the stream ${settings.stream} on ${settings.replicas} nodes ` +
      `(NATS_REPLICAS=${settings.replicas}): ${(err as Error).message}; ` +
      'NATS_REPLICAS must not exceed the JetStream nodes of the cluster',
    true,
    'NATS',
  );
}

/** The stream's last seq (0 when empty). */
export async function streamHead(client: NatsClient): Promise<number> {
  const { jsm } = await client.jetStream();
  try {
    return (await jsm.streams.info(client.stream)).state.last_seq;
  } catch (err) {
    throw client.failure(err, `could not read the stream ${client.stream}`);
  }
}

/**
 * The events with `afterSeq < seq <= throughSeq`, in order, in batches, read by one ordered consumer:
 * the next batch is asked for only when the caller wants it, so a slow reader holds one batch at a time.
 * A batch is one pull: at most `batch` events and about REPLAY_PULL_BYTES. It ends before the event that
 * would take its messages past `maxBytes` in all (the first event always comes).
 */
export async function* readStream(
  client: NatsClient,
  afterSeq: number,
  throughSeq: number,
  batch = REPLAY_BATCH,
  maxBytes = Infinity,
): AsyncGenerator<StoredEvent[]> {
  if (throughSeq <= afterSeq) return;
  const consumer = await replayConsumer(client, afterSeq, throughSeq);
  if (!consumer) return;
  try {
    const progress = { last: afterSeq, taken: 0, bytes: 0, largest: 0 };
    while (progress.last < throughSeq) {
      const perPull = Math.max(1, Math.floor(REPLAY_PULL_BYTES / (progress.largest || EVENT_MAX_BYTES)));
      const want = Math.min(batch, throughSeq - progress.last, perPull);
      const pulled = await pull(client, consumer, want, throughSeq, maxBytes, progress);
      if (pulled.events.length > 0) yield pulled.events;
      else if (!pulled.full)
        throw new TransportError(
          `NATS at ${client.url} sent no events after seq ${progress.last} in time`,
          false,
          'NATS',
        );
      if (pulled.end || pulled.full) return;
    }
  } finally {
    // Done with it: removed now rather than left to idle out.
    consumer.delete().catch(() => undefined);
  }
}

/** While a replay's consumer sits on a node still catching up, it is made again after 50 ms doubling to 1 s. */
const LAGGING_NODE_BACKOFF = { firstMs: 50, maxMs: 1000, jitter: true };

/**
 * An ordered consumer from `afterSeq + 1` on a node that holds the stream through `throughSeq`, or none
 * when nothing is stored there any more (purged). JetStream places it on any node of the stream, and one
 * that has just come back holds only part of it while it catches up: read there, the replay would end
 * short of the head the leader gave, and a service would answer "not found" for an event it acknowledged.
 * So such a consumer is deleted and made again (on another node, or once that one has caught up), for
 * as long as a request may take; then the replay fails, as any call NATS cannot answer in time.
 */
async function replayConsumer(
  client: NatsClient,
  afterSeq: number,
  throughSeq: number,
): Promise<Consumer | undefined> {
  const { js, jsm } = await client.jetStream();
  const deadline = Date.now() + client.timeoutMs;
  for (let attempt = 0; ; attempt++) {
    let consumer: Consumer;
    let holds: number;
    let startsAfter: number;
    try {
      consumer = await js.consumers.get(client.stream, {
        name_prefix: `${REPLAY_CONSUMER_PREFIX}${shortId()}`,
        opt_start_seq: afterSeq + 1,
        inactive_threshold: REPLAY_CONSUMER_IDLE_MS,
      });
      const info = await consumer.info(true);
      holds = info.num_pending;
      // A node whose stream ends before the start seq starts the consumer after its own last seq instead.
      startsAfter = info.delivered.stream_seq;
    } catch (err) {
      throw client.failure(err, `could not read the stream ${client.stream}`);
    }
    if (startsAfter === afterSeq && holds >= throughSeq - afterSeq) return consumer;
    // Nothing is ever deleted from the stream but by a purge, which moves its first seq.
    const from = Math.max(afterSeq, (await firstSeq(client, jsm)) - 1);
    if (startsAfter === from && holds >= throughSeq - from && from < throughSeq) return consumer;
    consumer.delete().catch(() => undefined);
    if (from >= throughSeq) return undefined;
    if (attempt === 0)
      client.log?.warn(
        { afterSeq, throughSeq, holds },
        "a replay's consumer is on a NATS node still catching up: made again",
      );
    if (Date.now() >= deadline)
      throw new TransportError(
        `NATS at ${client.url} served the stream ${client.stream} through seq ${throughSeq} from no node in time`,
        false,
        'NATS',
      );
    await sleep(backoffDelay(attempt, LAGGING_NODE_BACKOFF));
  }
}

/** The stream's first seq, as its leader has it. */
async function firstSeq(client: NatsClient, jsm: JetStreamManager): Promise<number> {
  try {
    return (await jsm.streams.info(client.stream)).state.first_seq;
  } catch (err) {
    throw client.failure(err, `could not read the stream ${client.stream}`);
  }
}

/** A short random token for a consumer's name (letters and digits). */
export const shortId = (): string => randomBytes(6).toString('hex');

/** How far a replay has read: the last seq, how many events and bytes so far, the largest message. */
interface ReadProgress {
  last: number;
  taken: number;
  bytes: number;
  largest: number;
}

/**
 * One pull of a replay: up to `want` events, stopping at `throughSeq`, at the stream's end (`end`) or
 * before the event that would pass `maxBytes` (`full`).
 */
async function pull(
  client: NatsClient,
  consumer: Consumer,
  want: number,
  throughSeq: number,
  maxBytes: number,
  progress: ReadProgress,
): Promise<{ events: StoredEvent[]; end: boolean; full: boolean }> {
  const events: StoredEvent[] = [];
  let end = false;
  try {
    const messages = await consumer.fetch({ max_messages: want, expires: Math.max(1000, client.timeoutMs) });
    for await (const msg of messages) {
      // Never a seq outside the range asked for, whatever the node serving the consumer holds.
      if (msg.seq <= progress.last)
        throw new TransportError(`NATS sent seq ${msg.seq} after seq ${progress.last}`, false, 'NATS');
      const size = msg.data.length;
      // Past the byte budget: the rest stays in the stream (the consumer is deleted by the caller).
      if (progress.taken > 0 && progress.bytes + size > maxBytes) return { events, end, full: true };
      events.push(storedEvent(msg));
      progress.taken++;
      progress.bytes += size;
      progress.largest = Math.max(progress.largest, size);
      progress.last = msg.seq;
      // `pending` is what the stream holds after this message: 0 means its end.
      end = msg.seq >= throughSeq || msg.info.pending === 0;
      if (end || events.length >= want) break;
    }
  } catch (err) {
    throw client.failure(err, `could not read the stream ${client.stream}`);
  }
  return { events, end, full: false };
}

/**
 * A stream message as the services see an event: `{seq, id, time, ...body}`, the seq and time the
 * stream's. A body that is not a JSON object stays visible as `{seq, id, time, body}`, which no
 * validation accepts, so a replay skips it with a warning and a consumer terminates it.
 */
export function storedEvent(msg: JsMsg): StoredEvent {
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
