import type { ServerResponse } from 'node:http';
import type { IncomingEvent, RawRoutes, ServiceContext } from '@blog/common';
import { Gauge } from 'prom-client';
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
 * Bounded: at most `maxClients` streams (503 beyond), and a client that does not read (more than
 * `maxBufferedBytes` waiting) is cut off; it reconnects and starts again from a snapshot. `close()` ends
 * every stream, so a shutdown does not wait for browsers to hang up.
 */
export interface LiveOptions {
  maxClients?: number;
  heartbeatMs?: number;
  /** How many of the latest events the snapshot carries (the client's event-flow panel). */
  recentEvents?: number;
  maxBufferedBytes?: number;
}

export interface LiveEventMessage {
  type: string;
  seq: number | undefined;
  id: string | undefined;
  time: string;
  data: Record<string, unknown>;
}

export const LIVE_PATH = '/posts/live';

export function liveUpdates(options: LiveOptions = {}) {
  const maxClients = options.maxClients ?? 1000;
  const heartbeatMs = options.heartbeatMs ?? 15_000;
  const recentEvents = options.recentEvents ?? 20;
  const maxBufferedBytes = options.maxBufferedBytes ?? 1024 * 1024;

  const clients = new Set<ServerResponse>();
  const recent: LiveEventMessage[] = [];
  let heartbeat: NodeJS.Timeout | undefined;
  let unsubscribe: (() => void) | undefined;
  let closed = false;

  const drop = (res: ServerResponse) => {
    clients.delete(res);
    if (clients.size === 0 && heartbeat) {
      clearInterval(heartbeat);
      heartbeat = undefined;
    }
    if (!res.writableEnded) res.end();
  };

  const send = (res: ServerResponse, chunk: string) => {
    res.write(chunk);
    // A client that stopped reading would make us hold every later event in memory: let it go.
    if (res.writableLength > maxBufferedBytes) drop(res);
  };

  const onApplied = (event: IncomingEvent) => {
    const message: LiveEventMessage = {
      type: event.type,
      seq: event.seq,
      id: event.id,
      time: event.time ?? new Date().toISOString(),
      data: event.data,
    };
    recent.push(message);
    if (recent.length > recentEvents) recent.shift();
    if (clients.size === 0) return;
    const chunk = `data: ${JSON.stringify(message)}\n\n`;
    for (const res of clients) send(res, chunk);
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
        this.set(clients.size);
      },
    });

    const refuse = (res: ServerResponse, message: string) => {
      const body = JSON.stringify({ errors: [{ message }] });
      res
        .writeHead(503, {
          ...headers,
          'Content-Type': 'application/json; charset=utf-8',
          'Content-Length': Buffer.byteLength(body),
          'Retry-After': '5',
        })
        .end(body);
    };

    const getLive: RawRoutes[string] = (req, res) => {
      if (closed) return refuse(res, 'The query service is shutting down');
      if (clients.size >= maxClients) {
        return refuse(res, `Too many live connections (${maxClients}); try again later`);
      }
      res.writeHead(200, {
        ...headers,
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-cache',
        // ingress-nginx (and nginx in general) would otherwise buffer the stream.
        'X-Accel-Buffering': 'no',
        Connection: 'keep-alive',
      });
      clients.add(res);
      req.once('close', () => drop(res));
      const snapshot = { seq: subscriber.appliedSeq, posts: subscriber.state.posts, recent };
      send(res, `retry: 2000\nevent: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`);
      heartbeat ??= setInterval(() => {
        for (const client of clients) send(client, ': heartbeat\n\n');
      }, heartbeatMs).unref();
    };
    return { [`GET ${LIVE_PATH}`]: getLive };
  };

  return {
    routes,
    get clientCount() {
      return clients.size;
    },
    /** Ends every stream and refuses new ones (called before the server closes). */
    close() {
      closed = true;
      unsubscribe?.();
      for (const res of [...clients]) drop(res);
    },
  };
}
