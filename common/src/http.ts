import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import cors from 'cors';
import express, { type Express } from 'express';
import helmet from 'helmet';
import { describeError, errorHandler, notFoundHandler } from './errors.js';
import { acceptEventSockets, closeEventSockets, drainEventSockets, socketExchanges } from './event-socket.js';
import { fastJsonBodyParser, jsonBodyParser } from './json-body.js';
import { BODY_MAX_BYTES } from './limits.js';
import { socketExchange } from './socket-exchange.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import {
  findRawRoute,
  rawRouteTable,
  type RawHandler,
  type RawRoutes,
  type RawRouteTable,
  type RouteParams,
} from './raw-routes.js';

export interface Readiness {
  ready: boolean;
  reason?: string;
}

/**
 * A route the Ingress sends to this service, which the course's React app calls from the browser: the only
 * routes that grant CORS. Never the event path (`/events`), the probes or `/metrics`, so no web page can
 * post events or read them through a visitor's browser.
 */
export interface PublicRoute {
  /** An Express path (`/posts/:id/comments`). */
  path: string;
  methods: ('GET' | 'POST')[];
}

export interface HttpAppOptions {
  metrics: Metrics;
  /** posts, comments and query: the routes that allow CORS, as in the course. */
  publicRoutes?: PublicRoute[];
  readiness: () => Readiness | Promise<Readiness>;
  /** The largest JSON body taken, in bytes (default BODY_MAX_BYTES). */
  bodyLimit?: number;
  /**
   * The hottest reads, answered by node:http before Express sees the request (an exact `METHOD /path`,
   * any query string): they get the same security and CORS headers, computed once (`headers`), and skip
   * the routing and middleware work. Express serves them too, for a server not made by `listen`.
   */
  rawRoutes?: (kit: RawKit) => RawRoutes;
  log: Logger;
}

export type { RawHandler, RawRoutes, RouteParams };
export { forbiddenKeyPath, jsonDepth, MAX_JSON_DEPTH } from './json-body.js';

export interface JsonAnswer {
  status?: number;
  body?: unknown;
  /** The body as JSON text already, sent as it is in place of `body`. */
  json?: string;
  headers?: Record<string, string>;
}

export interface RawKit {
  /** helmet's headers, as every other answer has them. */
  headers: Record<string, string>;
  /** helmet's and CORS's headers, for a raw route that is one of the public routes. */
  publicHeaders: Record<string, string>;
  /**
   * A handler that takes a JSON body parsed and limited exactly as express.json does for the other routes,
   * answers JSON, and turns what it throws into the same `{"errors": [...]}` answers. `guard` runs first,
   * before the body is read: what it throws is the answer (a 401 for a missing token). `headers` replace
   * `headers` above on every answer (`publicHeaders`, for a public route).
   */
  json(
    route: string,
    handle: (body: unknown, req: IncomingMessage, params: RouteParams) => JsonAnswer | Promise<JsonAnswer>,
    guard?: (req: IncomingMessage) => void,
    headers?: Record<string, string>,
  ): RawHandler;
}

const rawRoutesOf = new WeakMap<Express, RawRouteTable>();
const headersOf = new WeakMap<Express, Record<string, string>>();

/** The headers helmet (and cors, if asked) set on an answer: recorded once, for the early routes. */
function staticHeaders(withCors: boolean): Record<string, string> {
  const headers: Record<string, string> = {};
  const res = {
    setHeader: (name: string, value: unknown) => void (headers[name] = String(value)),
    getHeader: (name: string) => headers[name],
    removeHeader: (name: string) => void delete headers[name],
  };
  const req = { method: 'GET', headers: {} };
  const middleware = [helmet(), ...(withCors ? [cors()] : [])] as unknown as ((
    req: unknown,
    res: unknown,
    next: (err?: unknown) => void,
  ) => void)[];
  for (const handler of middleware) {
    handler(req, res, (err) => {
      if (err) throw err;
    });
  }
  return headers;
}

/**
 * A header set as the flat list `writeHead` takes (`[name, value, name, value...]`), with JSON's type, and
 * the names it lists in lower case.
 */
interface HeaderList {
  list: string[];
  names: Set<string>;
}

function jsonHeaderList(headers: Record<string, string>): HeaderList {
  const list = [...Object.entries(headers).flat(), 'Content-Type', 'application/json; charset=utf-8'];
  return { list, names: new Set(list.filter((_, index) => index % 2 === 0).map((n) => n.toLowerCase())) };
}

function rawKit(options: HttpAppOptions): RawKit {
  const headers = staticHeaders(false);
  const bodyLimit = options.bodyLimit ?? BODY_MAX_BYTES;
  const parseJson = fastJsonBodyParser(bodyLimit);
  // Each route's fixed headers are listed once; an answer adds its own and the length to a copy.
  const headerLists = new WeakMap<Record<string, string>, HeaderList>();
  const headerList = (base: Record<string, string>) => {
    let list = headerLists.get(base);
    if (!list) headerLists.set(base, (list = jsonHeaderList(base)));
    return list;
  };
  const { httpDuration } = options.metrics;
  const answer = (
    res: ServerResponse,
    base: HeaderList,
    status: number,
    json: string,
    extra?: Record<string, string>,
  ) => {
    const list = base.list.slice();
    // An extra header replaces the fixed one of the same name.
    for (const name in extra) {
      if (base.names.has(name.toLowerCase())) setListed(list, name, extra[name]!);
      else list.push(name, extra[name]!);
    }
    list.push('Content-Length', String(Buffer.byteLength(json)));
    res.writeHead(status, list).end(json);
  };
  return {
    headers,
    publicHeaders: staticHeaders(true),
    json: (route, handle, guard, answerHeaders = headers) => {
      const base = headerList(answerHeaders);
      const handler: RawHandler = (req, res, params = {}) => {
        const started = performance.now();
        const reply = (status: number, json: string, extra?: Record<string, string>) => {
          answer(res, base, status, json, extra);
          const labels = { method: req.method, route, status: String(status) };
          httpDuration.observe(labels, (performance.now() - started) / 1000);
        };
        const fail = (err: unknown) => {
          const { status, errors, headers } = describeError(err, options.log, req.method, req.url);
          if (!res.headersSent) reply(status, JSON.stringify({ errors }), headers);
        };
        try {
          guard?.(req);
        } catch (err) {
          return fail(err);
        }
        parseJson(req, res, (err) => {
          if (err) return fail(err);
          Promise.resolve()
            .then(() => handle((req as IncomingMessage & { body?: unknown }).body, req, params))
            .then((result) => {
              const json = result.json ?? JSON.stringify(result.body);
              reply(result.status ?? 200, json, result.headers);
            }, fail);
        });
      };
      socketExchanges.set(handler, socketExchange(options, bodyLimit, route, handle, guard));
      return handler;
    },
  };
}

/** Replaces the value listed under `name` (any letter case) in a flat header list. */
function setListed(list: string[], name: string, value: string): void {
  const lower = name.toLowerCase();
  for (let index = 0; index < list.length; index += 2) {
    if (list[index]!.toLowerCase() === lower) list[index + 1] = value;
  }
}

/** The plumbing every service shares: security headers, CORS, JSON bodies, health, readiness and metrics. */
export function createHttpApp(options: HttpAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const kit = rawKit(options);
  const rawRoutes = {
    // Probed often (a kubelet, a script waiting for the start): answered ahead of Express's middleware.
    'GET /readyz': kit.json('/readyz', async () => {
      const readiness = await options.readiness();
      return { status: readiness.ready ? 200 : 503, body: readiness };
    }),
    ...options.rawRoutes?.(kit),
  };
  rawRoutesOf.set(app, rawRouteTable(rawRoutes));
  headersOf.set(app, kit.headers);
  for (const [route, handler] of Object.entries(rawRoutes)) {
    const [method, path] = route.split(' ') as [string, string];
    const register = { GET: 'get', HEAD: 'head', POST: 'post' } as const;
    const verb = register[method as keyof typeof register];
    if (!verb) throw new Error(`raw route ${route}: only GET, HEAD and POST`);
    app[verb](path, (req: express.Request, res: ServerResponse) =>
      handler(req, res, req.params as RouteParams),
    );
  }
  app.use(options.metrics.timeRequests);
  app.use(helmet());
  // Preflights of the public routes are answered here (204); any other preflight finds no route (404).
  for (const route of options.publicRoutes ?? []) app.all(route.path, cors({ methods: route.methods }));
  app.use(jsonBodyParser(options.bodyLimit ?? BODY_MAX_BYTES));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(options.metrics.registry.contentType).send(await options.metrics.registry.metrics());
  });
  return app;
}

/** Unknown routes answer 404 JSON, and every error a JSON body: call after the service's own routes. */
export function finishHttpApp(app: Express, log: Logger): void {
  app.use(notFoundHandler);
  app.use(errorHandler(log));
}

/**
 * How long a request may take to arrive, and an idle keep-alive connection may stay open. Node counts the
 * first two from the request's first byte until its headers, or its whole body, have arrived: a response
 * that streams afterwards (GET /posts/live) is not cut, and neither is a connection idle between requests.
 * Every body here is at most 100 kB, so 30 s allows 3.3 kB/s; the keep-alive outlasts the 60 s that
 * ingress-nginx and Node's agents keep an idle upstream connection, so the server never closes one as the
 * client sends on it.
 */
export interface ServerTimeouts {
  headersMs: number;
  requestMs: number;
  keepAliveMs: number;
}
export const SERVER_TIMEOUTS: Readonly<ServerTimeouts> = {
  headersMs: 20_000,
  requestMs: 30_000,
  keepAliveMs: 65_000,
};

/**
 * Node checks the first two timeouts every `connectionsCheckingInterval` (30 s by default, which would
 * double them): a tenth of the shorter, at most a second.
 */
function serverTimeoutOptions(timeouts: Partial<ServerTimeouts> = {}) {
  const { headersMs, requestMs, keepAliveMs } = { ...SERVER_TIMEOUTS, ...timeouts };
  return {
    headersTimeout: headersMs,
    requestTimeout: requestMs,
    keepAliveTimeout: keepAliveMs,
    connectionsCheckingInterval: Math.min(1000, Math.ceil(Math.min(headersMs, requestMs) / 10)),
  };
}

/**
 * Servers whose answers close their connection (`drainConnections`): a keep-alive client then opens a new
 * one for its next request, which a Service or an Ingress sends to another replica.
 */
const drainingServers = new WeakSet<Server>();

export function listen(
  app: Express,
  port: number,
  host?: string,
  timeouts?: Partial<ServerTimeouts>,
): Promise<Server> {
  const rawRoutes = rawRoutesOf.get(app) ?? rawRouteTable({});
  const options = serverTimeoutOptions(timeouts);
  const server = createServer(options, (req, res) => {
    if (drainingServers.has(server)) res.shouldKeepAlive = false;
    const query = req.url!.indexOf('?');
    const path = query === -1 ? req.url! : req.url!.slice(0, query);
    const raw = findRawRoute(rawRoutes, req.method!, path);
    if (raw) raw.handler(req, res, raw.params);
    else app(req, res);
  });
  server.on('clientError', answerClientError(headersOf.get(app) ?? {}));
  acceptEventSockets(server, rawRoutes, () => drainingServers.has(server));
  return new Promise((resolve, reject) => {
    // Without a host, Node binds `::` (dual stack), or 0.0.0.0 where IPv6 is off, and looks up no name.
    if (host === undefined) server.listen(port, () => resolve(server));
    else server.listen(port, host, () => resolve(server));
    server.keepAliveTimeout = options.keepAliveTimeout;
    server.once('error', reject);
  });
}

/**
 * From now on every answer says `Connection: close` and closes its connection, so keep-alive clients
 * move to a new one; idle connections are left open (closing one races with a request sent on it).
 */
export function drainConnections(server: Server): void {
  drainingServers.add(server);
  void drainEventSockets(server);
}

/**
 * A request Node's HTTP parser refuses before any handler sees it (bytes a URL may not hold, headers too
 * large, a malformed request line), or one that took longer to arrive than the server's timeouts, is
 * answered like every other error: JSON, with the security headers, instead of Node's bare answer.
 */
function answerClientError(headers: Record<string, string>) {
  return (err: NodeJS.ErrnoException, socket: import('node:stream').Duplex) => {
    // The answer to this request has begun (a handler answered before the body ended): nothing to add.
    const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    if (!socket.writable || answering || err.code === 'ECONNRESET') return void socket.destroy();
    const [status, reason, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large', 'The request headers are too large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout', 'The request took too long to arrive']
          : [400, 'Bad Request', 'The request is not valid HTTP'];
    // A HEAD request gets the headers only, as HTTP requires (the client would read a body as garbage).
    const head = (err as { rawPacket?: Buffer }).rawPacket?.subarray(0, 5).toString('latin1') === 'HEAD ';
    const json = JSON.stringify({ errors: [{ message }] });
    const body = head ? '' : json;
    const lines = Object.entries({
      ...headers,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': String(Buffer.byteLength(json)),
      Connection: 'close',
    }).map(([name, value]) => `${name}: ${value}`);
    socket.end(`HTTP/1.1 ${status} ${reason}\r\n${lines.join('\r\n')}\r\n\r\n${body}`);
  };
}

/**
 * Stops accepting connections, lets requests in flight finish (up to `graceMs`), then closes the rest.
 * Every answer from now on closes its connection, and idle keep-alive connections are closed as soon as
 * they are idle, so no client keeps one to a server that is going away.
 */
export async function closeServer(server: Server, graceMs = 10_000): Promise<void> {
  drainConnections(server);
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  // An answer sent with keep-alive before the drain leaves its connection idle once done.
  const sweep = setInterval(() => server.closeIdleConnections(), 100);
  const timer = setTimeout(() => {
    server.closeAllConnections();
    void closeEventSockets(server);
  }, graceMs);
  await closed;
  clearInterval(sweep);
  clearTimeout(timer);
}
