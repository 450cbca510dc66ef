/**
 * The event path's socket, client side (docs/event-bus.md, "The event path's socket"): an `HttpClient` whose
 * `POST`s to a `/events` URL travel over one WebSocket per URL, once the server takes the upgrade; any other
 * request, a body over `BODY_MAX_BYTES`, and every request to a server that does not take it, as before.
 */
import type { WebSocket } from 'ws';
import { FIRST_LINE_MAX_BYTES, loadWs, lowerCaseHeaders, SOCKET_PATH, splitMessage } from './event-socket.js';
import {
  HttpClient,
  type HttpAnswer,
  type HttpClientOptions,
  type HttpRequestOptions,
} from './http-client.js';
import { ANSWER_MAX_BYTES, BODY_MAX_BYTES } from './limits.js';

/** After a server answered the upgrade with anything but 101 (it does not take it): POSTs until then. */
export const UPGRADE_REFUSED_RETRY_MS = 30_000;
/** After an upgrade that did not reach the server (it is down, say): POSTs, which fail as they do, until then. */
export const UPGRADE_FAILED_RETRY_MS = 1_000;
/**
 * How often an open socket is pinged; one unanswered for a whole period is ended. Well under the idle
 * timeouts of connection tracking (IPVS: 15 min) and the server's idle limit (SOCKET_IDLE_MS).
 */
export const SOCKET_PING_MS = 30_000;
/** The longest an upgrade may take before the request goes as a POST (a server may leave a GET unanswered). */
export const UPGRADE_TIMEOUT_MS = 2_000;

/** A URL whose path is the socket's, `/events`, and nothing after it. */
const EVENTS_URL = /^https?:\/\/[^/?#]+\/events$/;

const withCode = (err: Error, code: string) => Object.assign(err, { code });

interface Pending {
  resolve(answer: HttpAnswer): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
  maxBytes: number;
}

/** One open socket: requests numbered by `ref`, each answer matched to its request. */
class EventSocket {
  private readonly pending = new Map<number, Pending>();
  private nextRef = 1;

  /** Open, and not given up on: a socket that timed out is ended at once, before its close arrives. */
  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  /** Whether the server has been heard from since the last ping. */
  private heard = true;
  private readonly heartbeat: NodeJS.Timeout;

  constructor(
    private readonly ws: WebSocket,
    pingMs: number,
  ) {
    ws.on('message', (data: Buffer) => {
      this.heard = true;
      this.answered(data);
    });
    ws.on('pong', () => (this.heard = true));
    ws.on('close', () => {
      clearInterval(this.heartbeat);
      this.fail('the event socket closed before the answer');
    });
    ws.on('error', () => ws.terminate());
    // A ping now and then keeps an idle socket open through the network's connection tracking, and finds
    // a server that went away without closing it (a node lost): unheard for a whole period, it is ended.
    this.heartbeat = setInterval(() => {
      if (!this.heard) return void ws.terminate();
      this.heard = false;
      ws.ping();
    }, pingMs).unref();
  }

  exchange(options: HttpRequestOptions, maxBytes: number): Promise<HttpAnswer> {
    const ref = this.nextRef++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(withCode(new Error(`no complete answer within ${options.timeoutMs} ms`), 'ETIMEDOUT'));
        // A late answer must not be taken for a later request's: the next request opens a new socket.
        this.ws.terminate();
      }, options.timeoutMs);
      this.pending.set(ref, { resolve, reject, timer, maxBytes });
      const head = JSON.stringify({ ref, headers: options.headers ?? {} });
      this.ws.send(`${head}\n${options.body}`);
    });
  }

  private answered(data: Buffer): void {
    const message = splitMessage(data);
    const ref = message?.head.ref;
    const pending = typeof ref === 'number' ? this.pending.get(ref) : undefined;
    if (!message || !pending) return void this.ws.terminate(); // not an answer to anything asked: unusable
    this.pending.delete(ref as number);
    clearTimeout(pending.timer);
    if (message.body.length > pending.maxBytes) {
      return pending.reject(
        withCode(new Error(`answer larger than ${pending.maxBytes} bytes`), 'ERR_ANSWER_TOO_LARGE'),
      );
    }
    pending.resolve({
      status: Number(message.head.status),
      headers: lowerCaseHeaders(message.head.headers as Record<string, unknown> | undefined),
      body: message.body.toString('utf8'),
    });
  }

  private fail(why: string): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer);
      // As a connection reset: the caller tries again as it does after one.
      pending.reject(withCode(new Error(why), 'ECONNRESET'));
    }
    this.pending.clear();
  }

  close(): void {
    this.ws.terminate();
  }
}

/** A URL's socket: open, on its way, or not to be asked for until `retryAt`. */
interface SocketState {
  socket?: EventSocket;
  opening?: Promise<EventSocket | undefined>;
  retryAt: number;
}

export class EventSocketClient extends HttpClient {
  private readonly states = new Map<string, SocketState>();
  private closing = false;
  private readonly pingMs: number;

  constructor(options: HttpClientOptions & { pingMs?: number } = {}) {
    super(options);
    this.pingMs = options.pingMs ?? SOCKET_PING_MS;
  }

  override request(url: string | URL, options: HttpRequestOptions): Promise<HttpAnswer> {
    const target = typeof url === 'string' ? url : url.href;
    if (!this.suits(target, options)) return super.request(url, options);
    let state = this.states.get(target);
    if (!state) this.states.set(target, (state = { retryAt: 0 }));
    if (state.socket?.open) return this.send(state.socket, options);
    if (!state.opening && performance.now() < state.retryAt) return super.request(url, options);
    state.opening ??= this.open(target, state, options);
    return state.opening.then((socket) =>
      socket ? this.send(socket, options) : super.request(url, options),
    );
  }

  override close(): void {
    this.closing = true;
    super.close();
    for (const state of this.states.values()) state.socket?.close();
    this.states.clear();
  }

  /** A POST of a body a server takes at once, to a `/events` URL, without an abort signal. */
  private suits(target: string, options: HttpRequestOptions): boolean {
    if (this.closing || options.method !== 'POST' || options.body === undefined || options.signal)
      return false;
    if (!target.endsWith(SOCKET_PATH) || !EVENTS_URL.test(target)) return false;
    return Buffer.byteLength(options.body) <= BODY_MAX_BYTES;
  }

  private send(socket: EventSocket, options: HttpRequestOptions): Promise<HttpAnswer> {
    return socket.exchange(options, options.maxAnswerBytes ?? ANSWER_MAX_BYTES);
  }

  /** The upgrade, with the request's own headers (its token); undefined if it was not taken. */
  private async open(
    target: string,
    state: SocketState,
    options: HttpRequestOptions,
  ): Promise<EventSocket | undefined> {
    const { WebSocket } = await loadWs();
    return new Promise<EventSocket | undefined>((resolve) => {
      const ws = new WebSocket(target.replace(/^http/, 'ws'), {
        headers: options.headers,
        perMessageDeflate: false,
        handshakeTimeout: Math.min(options.timeoutMs, UPGRADE_TIMEOUT_MS),
        maxPayload: (options.maxAnswerBytes ?? ANSWER_MAX_BYTES) + FIRST_LINE_MAX_BYTES,
        followRedirects: false,
      });
      let settled = false;
      const notTaken = (retryMs: number) => {
        if (settled) return;
        settled = true;
        state.retryAt = performance.now() + retryMs;
        ws.terminate();
        resolve(undefined);
      };
      ws.once('unexpected-response', (req, res) => {
        // Not read: a server that took `GET /events` for the log would send all of it.
        res.destroy();
        req.destroy();
        // A 5xx says this server cannot now (it is going away), not that it never takes a socket.
        notTaken((res.statusCode ?? 0) >= 500 ? UPGRADE_FAILED_RETRY_MS : UPGRADE_REFUSED_RETRY_MS);
      });
      // `on`, not `once`: ending a socket still opening emits an error of its own, which must not go unheard.
      ws.on('error', () => notTaken(UPGRADE_FAILED_RETRY_MS));
      ws.once('open', () => {
        if (settled || this.closing) {
          ws.terminate();
          return notTaken(0);
        }
        settled = true;
        ws.removeAllListeners('error');
        ws.removeAllListeners('unexpected-response');
        resolve((state.socket = new EventSocket(ws, this.pingMs)));
      });
    }).finally(() => (state.opening = undefined));
  }
}
