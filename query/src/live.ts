import type { IncomingMessage, ServerResponse } from 'node:http';
import type { BlockList } from 'node:net';
import type { IncomingEvent, RawRoutes, ServiceContext } from '@blog/common';
import { Gauge } from 'prom-client';
import { clientAddress, DEFAULT_TRUSTED_PROXIES, trustedProxies } from './client-address.js';
import type { QueryState } from './projection.js';

/**
 * `GET /posts/live`: the changes of the query service, pushed to browsers as server-sent events.
 *
 * - First message (`event: snapshot`): `{seq, posts, recent}`, the whole `GET /posts` view and the last
 *   events, sent on the same stream as what follows, so the client cannot miss an event in between.
 * - Then one message per event applied here (all types, CommentModerated included), in log order:
 *   `{type, seq, id, time, data}`.
 * - A comment line every `heartbeatMs`, so proxies (ingress-nginx closes a silent upstream after 60 s)
 *   keep the connection; EventSource reconnects by itself anyway, and gets a new snapshot.
 *
 * Each message is serialised once, into one buffer that every stream is given: the snapshot once per
 * change of the view (not once per client that connects), each change once for all clients.
 *
 * Bounded: at most `maxClients` streams (503 beyond) and `maxClientsPerAddress` from one client address
 * (429 beyond; client-address.ts says whose address, behind a proxy). A client that stops reading is cut
 * off once more than `maxBufferedBytes` written after its snapshot wait to be sent: the snapshot itself,
 * however large the view, never counts, so a view of several MiB reaches a slow link whole. `close()`
 * ends every stream, so a shutdown does not wait for browsers to hang up.
 */
export interface LiveOptions {
  maxClients?: number;
  maxClientsPerAddress?: number;
  heartbeatMs?: number;
  /** How many of the latest events the snapshot carries (the client's event-flow panel). */
  recentEvents?: number;
  maxBufferedBytes?: number;
  /** Proxies whose X-Real-IP / X-Forwarded-For are believed (client-address.ts): addresses or ranges. */
  trustedProxies?: string | string[];
}

export interface LiveEventMessage {
  type: string;
  seq: number | undefined;
  id: string | undefined;
  time: string;
  data: Record<string, unknown>;
}

export const LIVE_PATH = '/posts/live';
export const LIVE_DEFAULTS = {
  maxClients: 1000,
  maxClientsPerAddress: 10,
  heartbeatMs: 15_000,
  recentEvents: 20,
  maxBufferedBytes: 1024 * 1024,
} as const;

const HEARTBEAT = Buffer.from(': heartbeat\n\n');
const STREAM_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache',
  // ingress-nginx (and nginx in general) would otherwise buffer the stream.
  'X-Accel-Buffering': 'no',
  Connection: 'keep-alive',
};

/** One open stream: whose it is, and what was written to it (to tell the snapshot from what followed). */
interface Stream {
  address: string;
  snapshotBytes: number;
  writtenBytes: number;
}

/** The open streams: opening one, writing to one or all, dropping one, and the heartbeat while any is open. */
function liveStreams({ maxBufferedBytes, heartbeatMs }: { maxBufferedBytes: number; heartbeatMs: number }) {
  const streams = new Map<ServerResponse, Stream>();
  const perAddress = new Map<string, number>();
  let heartbeat: NodeJS.Timeout | undefined;

  const drop = (res: ServerResponse, { cut = false } = {}) => {
    const stream = streams.get(res);
    if (!stream) return;
    streams.delete(res);
    const left = (perAddress.get(stream.address) ?? 1) - 1;
    if (left > 0) perAddress.set(stream.address, left);
    else perAddress.delete(stream.address);
    if (streams.size === 0 && heartbeat) {
      clearInterval(heartbeat);
      heartbeat = undefined;
    }
    // A client that stopped reading: destroyed, so what waits for it is freed now, not when it reads.
    if (cut) res.destroy();
    else if (!res.writableEnded) res.end();
  };

  const send = (res: ServerResponse, chunk: Buffer) => {
    const stream = streams.get(res);
    if (!stream) return;
    res.write(chunk);
    stream.writtenBytes += chunk.length;
    // What waits is sent in order: the part of the snapshot not yet sent first, then what followed it.
    const sent = stream.writtenBytes - res.writableLength;
    const snapshotWaiting = Math.max(0, stream.snapshotBytes - sent);
    if (res.writableLength - snapshotWaiting > maxBufferedBytes) drop(res, { cut: true });
  };

  /** Starts a stream for `address` with its snapshot; it is dropped when the client goes. */
  const open = (req: IncomingMessage, res: ServerResponse, address: string, snapshot: Buffer) => {
    streams.set(res, { address, snapshotBytes: snapshot.length, writtenBytes: 0 });
    perAddress.set(address, (perAddress.get(address) ?? 0) + 1);
    req.once('close', () => drop(res));
    send(res, snapshot);
    heartbeat ??= setInterval(() => {
      for (const stream of streams.keys()) send(stream, HEARTBEAT);
    }, heartbeatMs).unref();
  };

  return {
    open,
    sendToAll(chunk: Buffer) {
      for (const res of streams.keys()) send(res, chunk);
    },
    dropAll() {
      for (const res of [...streams.keys()]) drop(res);
    },
    fromAddress: (address: string) => perAddress.get(address) ?? 0,
    get size() {
      return streams.size;
    },
  };
}

/** An event applied here, and when (the time its message shows if the event carries none). */
interface Applied {
  event: IncomingEvent;
  appliedAt: number;
}

function messageOf({ event, appliedAt }: Applied): LiveEventMessage {
  return {
    type: event.type,
    seq: event.seq,
    id: event.id,
    time: event.time ?? new Date(appliedAt).toISOString(),
    data: event.data,
  };
}

/**
 * The last `size` items added, kept in a ring: every event applied is added, those of a catch-up at start
 * included, so adding one moves nothing.
 */
function latest<T>(size: number) {
  const items: T[] = [];
  let oldest = 0;
  return {
    add(item: T) {
      if (items.length < size) items.push(item);
      else if (size > 0) {
        items[oldest] = item;
        oldest = (oldest + 1) % size;
      }
    },
    /** Oldest first. */
    inOrder: (): T[] => [...items.slice(oldest), ...items.slice(0, oldest)],
  };
}

/** A JSON error answer that tells the client to come back later. */
function refuse(res: ServerResponse, headers: Record<string, string>, status: 429 | 503, message: string) {
  const body = JSON.stringify({ errors: [{ message }] });
  res
    .writeHead(status, {
      ...headers,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Retry-After': '5',
    })
    .end(body);
}

export function liveUpdates(options: LiveOptions = {}) {
  const { maxClients, maxClientsPerAddress, heartbeatMs, recentEvents, maxBufferedBytes } = {
    ...LIVE_DEFAULTS,
    ...options,
  };
  const trusted: BlockList = trustedProxies(options.trustedProxies ?? DEFAULT_TRUSTED_PROXIES);

  const streams = liveStreams({ maxBufferedBytes, heartbeatMs });
  // The events themselves, each with when it was applied: the message of one is made only if it is sent
  // or shown, so a catch-up of 100,000 events makes 20 of them, not 100,000.
  const recent = latest<Applied>(recentEvents);
  /** Grows with every event applied: the cached snapshot is good while it has not moved. */
  let applied = 0;
  let snapshot: { applied: number; chunk: Buffer } | undefined;
  let unsubscribe: (() => void) | undefined;
  let closed = false;

  const onApplied = (event: IncomingEvent) => {
    applied++;
    const entry: Applied = { event, appliedAt: Date.now() };
    recent.add(entry);
    if (streams.size === 0) return;
    streams.sendToAll(Buffer.from(`data: ${JSON.stringify(messageOf(entry))}\n\n`));
  };

  const routes = (
    { subscriber, metrics }: ServiceContext<QueryState>,
    headers: Record<string, string>,
  ): RawRoutes => {
    unsubscribe ??= subscriber.onApplied(onApplied);
    new Gauge({
      name: 'query_live_clients',
      help: 'Browsers connected to GET /posts/live',
      registers: [metrics.registry],
      collect() {
        this.set(streams.size);
      },
    });

    const snapshotChunk = (): Buffer => {
      if (snapshot?.applied !== applied) {
        const view = {
          seq: subscriber.appliedSeq,
          posts: subscriber.state.posts,
          recent: recent.inOrder().map(messageOf),
        };
        snapshot = {
          applied,
          chunk: Buffer.from(`retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(view)}\n\n`),
        };
      }
      return snapshot.chunk;
    };

    const getLive = (req: IncomingMessage, res: ServerResponse) => {
      if (closed) return refuse(res, headers, 503, 'The query service is shutting down');
      if (streams.size >= maxClients) {
        return refuse(res, headers, 503, `Too many live connections (${maxClients}); try again later`);
      }
      const address = clientAddress(req, trusted);
      if (streams.fromAddress(address) >= maxClientsPerAddress) {
        const message = `Too many live connections from one address (${maxClientsPerAddress}); close some, or try again later`;
        return refuse(res, headers, 429, message);
      }
      res.writeHead(200, { ...headers, ...STREAM_HEADERS });
      streams.open(req, res, address, snapshotChunk());
    };
    return { [`GET ${LIVE_PATH}`]: getLive };
  };

  return {
    routes,
    get clientCount() {
      return streams.size;
    },
    /** Ends every stream and refuses new ones (called before the server closes). */
    close() {
      closed = true;
      unsubscribe?.();
      streams.dropAll();
    },
  };
}
