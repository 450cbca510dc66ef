import { hostname } from 'node:os';
import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from './logger.js';
import { loadNats } from './nats-libraries.js';
import { ensureStream } from './nats-stream.js';
import { TransportError } from './transport.js';

export interface NatsTransportOptions {
  /**
   * `nats://`, `tls://`, `ws://` or `wss://` (NATS_URL); several, comma-separated, are the nodes of one
   * cluster: the client connects to any of them and moves to another when its server goes.
   */
  url: string;
  /** The stream's name (NATS_STREAM); its subjects are `<stream>.events` and `<stream>.events.>`. */
  stream: string;
  /** How many nodes keep each event (NATS_REPLICAS, 1 by default); a stream made with another count is updated. */
  replicas?: number;
  /** Consumer failures and refused messages are logged here; nothing is logged without it. */
  log?: Logger;
  /** How long a publish, a JetStream API call or a replay may take before it fails. */
  timeoutMs?: number;
  /** The connection's name, as the NATS server's monitoring shows it (`replicaName`). */
  name?: string;
  /**
   * EVENT_BUS_TOKEN: presented to the server, which then serves only clients that have it. nats.js takes it
   * as this option only (a token in the URL is ignored).
   */
  token?: string;
}

/**
 * `<name>-<HOSTNAME>`, as consumer and connection names allow it: what tells the replicas of a service apart
 * (HOSTNAME is the pod's name in Kubernetes; the machine's name elsewhere).
 */
export function replicaName(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const host = (env.HOSTNAME || hostname() || 'host').replace(/[^A-Za-z0-9_-]+/g, '-').slice(0, 63);
  return `${name}-${host}`;
}

/** The connection and the JetStream clients made on it. */
export interface JetStreamHandles {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

/**
 * One connection to NATS and its stream: made on first use, creating the stream if it is missing, and
 * followed through reconnects. Every failure comes out as a TransportError (a 503 for the routes).
 */
export class NatsClient {
  readonly url: string;
  readonly stream: string;
  readonly subject: string;
  readonly log: Logger | undefined;
  readonly timeoutMs: number;
  readonly replicas: number;
  private readonly name: string | undefined;
  private readonly token: string | undefined;
  /** The connection, once made; a failed first attempt is forgotten, so the next call tries again. */
  private connecting: Promise<JetStreamHandles> | undefined;
  /** false while the client is reconnecting: calls then fail at once instead of waiting for a timeout. */
  private connected = false;
  private isClosed = false;

  constructor(options: NatsTransportOptions) {
    this.url = options.url;
    this.stream = options.stream;
    this.subject = `${options.stream}.events`;
    this.replicas = options.replicas ?? 1;
    this.log = options.log;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.name = options.name;
    this.token = options.token;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /**
   * The connection, made on first use. The client then reconnects forever by itself; while it is away,
   * calls fail at once with a TransportError, as they do when the HTTP bus is down.
   */
  async jetStream(): Promise<JetStreamHandles> {
    if (this.isClosed) throw new TransportError('the NATS transport is closed', false, 'NATS');
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

  /**
   * Lets what is in flight finish (drain) and closes the connection; calls fail from now on. `beforeDrain`
   * runs first, once `closed` is true: the consumers stop there, so none starts again.
   */
  async close(beforeDrain?: () => Promise<unknown>): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    await beforeDrain?.();
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

  /** Any failure as a TransportError (the 503s), saying whether NATS was unreachable or refused. */
  failure(err: unknown, doing: string): TransportError {
    if (err instanceof TransportError) return err;
    const message = (err as Error).message ?? String(err);
    // JetStream answered and refused (a message too large, a bad configuration): repeating will not help.
    const refused =
      typeof (err as { code?: unknown }).code === 'number' && (err as { code: number }).code > 0;
    return new TransportError(`NATS at ${this.url}: ${doing} (${message})`, refused, 'NATS');
  }

  private async open(): Promise<JetStreamHandles> {
    const servers = this.url.split(',');
    const ws = servers.some((url) => /^wss?:/i.test(url));
    if (ws && typeof (globalThis as { WebSocket?: unknown }).WebSocket !== 'function') {
      throw new TransportError(
        `${this.url}: a ws:// or wss:// NATS_URL needs Node 22 or later (WebSocket)`,
        false,
        'NATS',
      );
    }
    const { connect, wsconnect, jetstreamManager } = await loadNats();
    const nc = await (ws ? wsconnect : connect)({
      servers,
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
      await ensureStream(jsm, this.streamSettings());
      this.connected = true;
      void this.watch(nc, jsm);
      return { nc, js: jsm.jetstream(), jsm };
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw err;
    }
  }

  private streamSettings() {
    return { stream: this.stream, subject: this.subject, replicas: this.replicas, log: this.log };
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
        ensureStream(jsm, this.streamSettings()).catch((err: Error) =>
          this.log?.error({ err: err.message }, 'could not make sure the stream exists'),
        );
      }
    }
  }
}
