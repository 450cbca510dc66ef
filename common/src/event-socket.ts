/**
 * The event path's socket, server side: `POST /events` as messages on one WebSocket (docs/event-bus.md,
 * "The event path's socket"). A request is `{"ref":N,"headers":{...}}`, a newline, then the body the POST
 * would carry; its answer `{"ref":N,"status":S,"headers":{...}}`, a newline, then the answer's body. Each is
 * handed to the same handler as the POST (`socketExchanges`, filled by the raw routes' `json`), so the guard,
 * the JSON checks and the answers are the POST's.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocket, WebSocketServer } from 'ws';
import { findRawRoute, type RawHandler, type RawRouteTable } from './raw-routes.js';

/** The path of the socket, as of the POST whose requests it carries. */
export const SOCKET_PATH = '/events';
/** Room in a message for its first line, beyond the body the POST would carry. */
export const FIRST_LINE_MAX_BYTES = 64 * 1024;
/**
 * Requests of one socket being answered at once, past which the server reads no more of it until some are
 * answered, as node:http reads no further request of a connection while one is being answered. Our
 * clients send one at a time.
 */
export const SOCKET_IN_FLIGHT_MAX = 32;
/**
 * A socket the client has sent nothing on for this long (no request, no ping: ours ping every 30 s) is
 * ended, so a client that went away without closing it does not hold it for ever.
 */
export const SOCKET_IDLE_MS = 120_000;
/** Answers written to a socket and not yet taken by its client, past which the socket is ended. */
export const SOCKET_UNREAD_MAX_BYTES = 8 * 1024 * 1024;

/** What a handler of the event path answers, whether to a POST or to a message. */
export interface ExchangeAnswer {
  status: number;
  /** The answer's body, as JSON text. */
  json: string;
  headers?: Record<string, string>;
}

/** A raw route that also answers on the socket: its guard, run on the upgrade, and the exchange itself. */
export interface SocketExchange {
  guard(req: IncomingMessage): void;
  exchange(req: IncomingMessage, body: Buffer): Promise<ExchangeAnswer>;
  /** The largest body it takes. */
  bodyLimit: number;
  /** The answer to a refused upgrade (what `guard` threw), as the POST would be answered. */
  refusal(req: IncomingMessage, err: unknown): ExchangeAnswer;
}

/** Raw handlers that answer on the socket too (`rawKit`'s `json` registers them). */
export const socketExchanges = new WeakMap<RawHandler, SocketExchange>();

const NEWLINE = 0x0a;

/** The first line and the body of a message; undefined if it is not one of the event path's. */
export function splitMessage(data: Buffer): { head: Record<string, unknown>; body: Buffer } | undefined {
  const end = data.indexOf(NEWLINE);
  if (end === -1 || end > FIRST_LINE_MAX_BYTES) return undefined;
  try {
    const head: unknown = JSON.parse(data.toString('utf8', 0, end));
    if (typeof head !== 'object' || head === null || Array.isArray(head)) return undefined;
    return { head: head as Record<string, unknown>, body: data.subarray(end + 1) };
  } catch {
    return undefined;
  }
}

/** Header names in lower case, as node:http gives them; values as strings. */
export function lowerCaseHeaders(headers: Record<string, unknown> | undefined): Record<string, string> {
  const lower: Record<string, string> = {};
  for (const name in headers) {
    const value = headers[name];
    if (typeof value === 'string' || typeof value === 'number') lower[name.toLowerCase()] = String(value);
  }
  return lower;
}

let wsLibrary: Promise<typeof import('ws')> | undefined;
/** ws, loaded on first use: a process that never opens a socket does not pay for it at start. */
export const loadWs = () => (wsLibrary ??= import('ws'));

interface ServerSockets {
  wss: WebSocketServer;
  /** Each open socket with the count of its requests not answered yet. */
  open: Map<WebSocket, number>;
  /** When each socket was last heard from (a request or a ping). */
  heard: Map<WebSocket, number>;
  draining: boolean;
}

const socketsOf = new WeakMap<Server, Promise<ServerSockets>>();

/**
 * Takes `GET /events` upgrades on `server` for the raw route `POST /events` that answers on the socket;
 * while `draining`, refuses them with 503, so the client POSTs (to this server, with `Connection: close`,
 * or to another replica) and asks again a second later.
 */
export function acceptEventSockets(server: Server, table: RawRouteTable, draining: () => boolean): void {
  const route = findRawRoute(table, 'POST', SOCKET_PATH);
  const exchange = route && socketExchanges.get(route.handler);
  if (!exchange) return;
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const query = req.url!.indexOf('?');
    const path = query === -1 ? req.url! : req.url!.slice(0, query);
    const websocket = String(req.headers.upgrade).toLowerCase() === 'websocket';
    if (path !== SOCKET_PATH || req.method !== 'GET' || !websocket) {
      return refuse(socket, {
        status: 404,
        json: JSON.stringify({ errors: [{ message: 'No socket here' }] }),
      });
    }
    try {
      exchange.guard(req);
    } catch (err) {
      return refuse(socket, exchange.refusal(req, err));
    }
    if (draining()) return refuse(socket, GOING_AWAY);
    void socketsFor(server, exchange).then((sockets) => {
      if (sockets.draining || draining()) return refuse(socket, GOING_AWAY);
      sockets.wss.handleUpgrade(req, socket, head, (ws) => serve(sockets, ws, req, exchange));
    });
  });
}

function socketsFor(server: Server, exchange: SocketExchange): Promise<ServerSockets> {
  let sockets = socketsOf.get(server);
  if (!sockets) {
    sockets = loadWs().then(({ WebSocketServer }) => ({
      wss: new WebSocketServer({
        noServer: true,
        perMessageDeflate: false,
        clientTracking: false,
        maxPayload: exchange.bodyLimit + FIRST_LINE_MAX_BYTES,
      }),
      open: new Map(),
      heard: new Map(),
      draining: false,
    }));
    void sockets.then((made) => {
      // Whatever the socket, one sweep per server ends those unheard for SOCKET_IDLE_MS.
      const sweep = setInterval(() => {
        const before = performance.now() - SOCKET_IDLE_MS;
        for (const [ws, heard] of made.heard) if (heard < before) ws.terminate();
      }, SOCKET_IDLE_MS / 4).unref();
      server.once('close', () => clearInterval(sweep));
    });
    socketsOf.set(server, sockets);
  }
  return sockets;
}

/** Answers each request of the socket as the POST would be answered, in whatever order they finish. */
function serve(
  sockets: ServerSockets,
  ws: WebSocket,
  upgrade: IncomingMessage,
  exchange: SocketExchange,
): void {
  sockets.open.set(ws, 0);
  sockets.heard.set(ws, performance.now());
  ws.on('ping', () => sockets.heard.set(ws, performance.now()));
  ws.on('close', () => {
    sockets.open.delete(ws);
    sockets.heard.delete(ws);
  });
  ws.on('error', () => ws.terminate());
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    sockets.heard.set(ws, performance.now());
    const message = isBinary ? undefined : splitMessage(data);
    const ref = message?.head.ref;
    // Not a request of the event path: as a request that is not HTTP, it ends the connection.
    if (!message || typeof ref !== 'number') return void ws.close(1007, 'not a request of the event path');
    const inFlight = (sockets.open.get(ws) ?? 0) + 1;
    sockets.open.set(ws, inFlight);
    if (inFlight >= SOCKET_IN_FLIGHT_MAX) ws.pause();
    // The message's own headers, as the POST's would be; where it came from is the upgrade's.
    const headers = lowerCaseHeaders(message.head.headers as Record<string, unknown> | undefined);
    if (upgrade.headers.host !== undefined) headers.host = upgrade.headers.host;
    const req = Object.assign(Object.create(upgrade) as IncomingMessage, {
      method: 'POST',
      url: SOCKET_PATH,
      headers,
    });
    void exchange.exchange(req, message.body).then((answer) => {
      const head = { ref, status: answer.status, headers: lowerCaseHeaders(answer.headers) };
      if (ws.readyState === ws.OPEN) ws.send(`${JSON.stringify(head)}\n${answer.json}`);
      // A client that asks and does not read its answers is not left to fill this process's memory.
      if (ws.bufferedAmount > SOCKET_UNREAD_MAX_BYTES) return void ws.terminate();
      const left = (sockets.open.get(ws) ?? 1) - 1;
      sockets.open.set(ws, left);
      if (left < SOCKET_IN_FLIGHT_MAX) ws.resume();
      if (sockets.draining && left === 0) ws.close(1001, 'going away');
    });
  });
}

const GOING_AWAY: ExchangeAnswer = {
  status: 503,
  json: JSON.stringify({ errors: [{ message: 'This server is shutting down: POST, or ask again later' }] }),
};

/** A refused upgrade: the answer the POST would get, and the connection closed. */
function refuse(socket: Duplex, answer: ExchangeAnswer): void {
  const lines = Object.entries({
    ...answer.headers,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(answer.json)),
    Connection: 'close',
  }).map(([name, value]) => `${name}: ${value}`);
  if (socket.writable)
    socket.end(`HTTP/1.1 ${answer.status} Refused\r\n${lines.join('\r\n')}\r\n\r\n${answer.json}`);
  else socket.destroy();
}

/**
 * A server going away: each socket closes (1001) once it has answered what it was asked, and no new one
 * opens, so its clients open their next socket on another replica.
 */
export async function drainEventSockets(server: Server): Promise<void> {
  const sockets = await socketsOf.get(server);
  if (!sockets) return;
  sockets.draining = true;
  for (const [ws, inFlight] of sockets.open) if (inFlight === 0) ws.close(1001, 'going away');
}

/** Ends every socket still open, answered or not (the end of a stop's grace). */
export async function closeEventSockets(server: Server): Promise<void> {
  const sockets = await socketsOf.get(server);
  if (!sockets) return;
  sockets.draining = true;
  for (const ws of sockets.open.keys()) ws.terminate();
}
