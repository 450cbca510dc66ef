/**
 * How the local router (router.ts) passes a request to a backend and the answer back, and a websocket
 * upgrade to the client's dev server. No client and no backend can crash it: every socket and stream has
 * an error listener, either side going away ends the other, and a backend that does not answer in time
 * gets the client a 504.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { endSocketWithJson, sendJson } from './router-static.js';

/** Headers that belong to one hop (RFC 9110 7.6.1), not forwarded either way. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

export interface ProxyContext {
  agent: http.Agent;
  /** The router's own port, for X-Forwarded-Port. */
  localPort: number;
  /**
   * How long a backend may take to answer (connect, then its headers), and may stay silent in the middle
   * of an answer that is not an event stream; ingress-nginx's proxy_read_timeout is 60 s.
   */
  backendTimeoutMs: number;
}

export function forwardedHeaders(req: IncomingMessage, localPort: number): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  const connectionTokens = String(req.headers.connection ?? '')
    .split(',')
    .map((token) => token.trim().toLowerCase());
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !connectionTokens.includes(name))
      headers[name] = value;
  }
  const clientIp = req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = prior ? `${prior}, ${clientIp}` : clientIp;
  headers['x-real-ip'] = clientIp;
  headers['x-forwarded-host'] = req.headers.host ?? `localhost:${localPort}`;
  headers['x-forwarded-port'] = String(localPort);
  headers['x-forwarded-proto'] = 'http';
  return headers;
}

function responseHeaders(upstream: IncomingMessage): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  }
  return headers;
}

/** Where a request may go: the endpoints in rotation, round robin (endpoints.ts), skipping those tried. */
export interface Targets {
  next(tried?: ReadonlySet<URL>): URL | undefined;
  /** How many endpoints there are, ready or not: with one, nothing is kept for a retry. */
  readonly size: number;
}

/** Methods ingress-nginx passes to the next upstream even after the request was sent. */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS']);
/** The most of a request body kept to send again to the next endpoint; a larger one is never retried. */
const RETRY_BODY_MAX_BYTES = 1024 * 1024;

/** The request body as read so far, kept (up to RETRY_BODY_MAX_BYTES) for a retry, if `retries`. */
function keepBody(req: IncomingMessage, retries: boolean) {
  const chunks: Buffer[] = [];
  let bytes = 0;
  let whole = retries;
  const keep = (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > RETRY_BODY_MAX_BYTES) {
      whole = false;
      chunks.length = 0;
      req.off('data', keep);
    } else chunks.push(chunk);
  };
  if (retries) req.on('data', keep);
  return {
    get whole() {
      return whole;
    },
    /** Sends what was read to `upstream`, then the rest as it comes. */
    replay(upstream: http.ClientRequest): void {
      for (const chunk of chunks) upstream.write(chunk);
      if (req.readableEnded) upstream.end();
      else req.pipe(upstream);
    },
    /** The answer has begun: nothing will be sent again. */
    drop(): void {
      whole = false;
      chunks.length = 0;
      req.off('data', keep);
    },
  };
}

/**
 * Streams the request to an endpoint of `targets` and the answer back, both ways as they come (server-sent
 * events flow as they are written). Like ingress-nginx's `proxy_next_upstream error timeout`, a request
 * that could not be connected to one endpoint goes to the next (a GET also after a failure before the
 * answer began); one that was sent, other than a GET, never goes twice. No endpoint in rotation: 503 JSON;
 * none reachable: 502 JSON; no answer within the timeout: 504 JSON; a backend that fails mid-answer, or
 * falls silent in one that is not an event stream: the client's answer is cut.
 */
export function proxyRequest(
  req: IncomingMessage,
  res: ServerResponse,
  targets: Targets,
  backendName: string,
  context: ProxyContext,
): void {
  const first = targets.next();
  if (!first) return sendJson(res, 503, `${backendName} has no endpoint ready to serve`);
  const tried = new Set<URL>();
  const body = keepBody(req, targets.size > 1);
  let upstream: http.ClientRequest;
  const send = (target: URL) => {
    tried.add(target);
    upstream = sendUpstream(req, res, target, backendName, context, (sent) => {
      const again =
        body.whole && (!sent || IDEMPOTENT.has(req.method ?? '')) ? targets.next(tried) : undefined;
      if (!again) return false;
      req.unpipe(upstream);
      send(again);
      return true;
    });
    upstream.once('response', () => body.drop());
    body.replay(upstream);
  };
  send(first);
  // The client reset the connection while sending the body: the backend's request goes too.
  req.once('error', () => upstream.destroy());
  // The browser left (closed the tab, an EventSource reconnecting): stop the backend's answer too.
  res.once('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
}

/**
 * One attempt at `target`. On an error or timeout before the answer began, `retry(sent)` may send the
 * request elsewhere (`sent`: the request may have reached the backend) and says whether it did.
 */
function sendUpstream(
  req: IncomingMessage,
  res: ServerResponse,
  target: URL,
  backendName: string,
  context: ProxyContext,
  retry: (sent: boolean) => boolean,
): http.ClientRequest {
  const upstream = http.request({
    protocol: target.protocol,
    hostname: target.hostname,
    port: target.port,
    method: req.method,
    path: req.url,
    headers: forwardedHeaders(req, context.localPort),
    agent: context.agent,
  });
  let connected = false;
  upstream.once('socket', (socket) => {
    if (!socket.connecting) connected = true;
    else socket.once('connect', () => (connected = true));
  });
  upstream.once('response', (answer) => {
    answer.once('error', () => res.destroy());
    // The client left before the answer came.
    if (res.destroyed) return void upstream.destroy();
    const stream = String(answer.headers['content-type']).startsWith('text/event-stream');
    // An event stream is quiet between events for as long as it likes (query sends a heartbeat).
    if (stream) upstream.setTimeout(0);
    res.writeHead(answer.statusCode ?? 502, answer.statusMessage, responseHeaders(answer));
    // An event stream's headers go out now, not with its first message.
    if (stream) res.flushHeaders();
    answer.pipe(res);
  });
  let failed = false;
  upstream.setTimeout(context.backendTimeoutMs, () => {
    failed = true;
    upstream.destroy();
    if (res.headersSent) return void res.destroy();
    if (!res.destroyed && !retry(connected)) sendJson(res, 504, `${backendName} did not answer in time`);
  });
  upstream.once('error', (err: NodeJS.ErrnoException) => {
    if (failed || res.writableFinished) return;
    failed = true;
    if (res.headersSent) return void res.destroy();
    if (res.destroyed || retry(connected)) return;
    sendJson(res, 502, `${backendName} is not reachable (${err.code ?? err.message}). Is it running?`);
  });
  return upstream;
}

/**
 * A websocket upgrade (Vite's hot reload under `npm run dev`) passed to `target`, then piped both ways
 * until either side closes. The client's socket has had an error listener since the router received it.
 */
export function proxyUpgrade(
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
  target: URL,
  backendName: string,
  context: ProxyContext,
): void {
  const upstream = http.request({
    hostname: target.hostname,
    port: target.port,
    path: req.url,
    headers: {
      ...forwardedHeaders(req, context.localPort),
      connection: 'Upgrade',
      upgrade: req.headers.upgrade,
    },
    method: req.method,
  });
  // Once the client has an answer (a 101, the backend's refusal, a 502 or 504), nothing else goes to it.
  let answered = false;
  const answer = (status: number, reason: string, message: string) => {
    if (answered) return;
    answered = true;
    endSocketWithJson(socket, status, reason, message);
  };
  // The client went before the backend answered: nothing more to wait for.
  socket.once('close', () => upstream.destroy());
  upstream.once('upgrade', (accepted, upstreamSocket, upstreamHead) => {
    answered = true;
    const end = () => {
      socket.destroy();
      upstreamSocket.destroy();
    };
    upstreamSocket.once('error', end).once('close', end);
    if (socket.destroyed) return end();
    // A websocket may be idle for as long as it likes.
    upstreamSocket.setTimeout(0);
    const lines = [`HTTP/1.1 ${accepted.statusCode} ${accepted.statusMessage}`];
    for (let i = 0; i < accepted.rawHeaders.length; i += 2)
      lines.push(`${accepted.rawHeaders[i]}: ${accepted.rawHeaders[i + 1]}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (upstreamHead.length > 0) socket.write(upstreamHead);
    if (head.length > 0) upstreamSocket.write(head);
    upstreamSocket.pipe(socket).pipe(upstreamSocket);
    socket.once('close', end);
  });
  upstream.once('response', (refusal) => {
    // The backend answered without upgrading: its status goes back, and the connection closes.
    refusal.once('error', () => undefined).resume();
    if (answered) return;
    answered = true;
    socket.end(
      `HTTP/1.1 ${refusal.statusCode} ${refusal.statusMessage}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
    );
  });
  upstream.setTimeout(context.backendTimeoutMs, () => {
    answer(504, 'Gateway Timeout', `${backendName} did not answer in time`);
    upstream.destroy();
  });
  upstream.once('error', (err: NodeJS.ErrnoException) => {
    const message = `${backendName} is not reachable (${err.code ?? err.message}). Is it running?`;
    answer(502, 'Bad Gateway', message);
  });
  upstream.end();
}
