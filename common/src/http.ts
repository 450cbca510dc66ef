import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import cors from 'cors';
import express, { type Express } from 'express';
import helmet from 'helmet';
import { describeError, errorHandler, notFoundHandler } from './errors.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';

export interface Readiness {
  ready: boolean;
  reason?: string;
}

export interface HttpAppOptions {
  metrics: Metrics;
  /** posts, comments and query allow CORS, as in the course (the React app calls them from the browser). */
  cors?: boolean;
  readiness: () => Readiness | Promise<Readiness>;
  bodyLimit?: string;
  /**
   * The hottest reads, answered by node:http before Express sees the request (an exact `METHOD /path`,
   * any query string): they get the same security and CORS headers, computed once (`headers`), and skip
   * the routing and middleware work. Express serves them too, for a server not made by `listen`.
   */
  rawRoutes?: (kit: RawKit) => RawRoutes;
  log: Logger;
}

export type RawHandler = (req: IncomingMessage, res: ServerResponse) => void;
export type RawRoutes = Record<string, RawHandler>;

export interface JsonAnswer {
  status?: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface RawKit {
  /** helmet's and cors's headers, as every other answer has them. */
  headers: Record<string, string>;
  /**
   * A handler that takes a JSON body parsed and limited exactly as express.json does for the other routes,
   * answers JSON, and turns what it throws into the same `{"errors": [...]}` answers.
   */
  json(
    route: string,
    handle: (body: unknown, req: IncomingMessage) => JsonAnswer | Promise<JsonAnswer>,
  ): RawHandler;
}

const rawRoutesOf = new WeakMap<Express, Map<string, RawHandler>>();

/** The headers helmet (and cors, if on) set on every answer: recorded once, for the early routes. */
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

function rawKit(options: HttpAppOptions): RawKit {
  const headers = staticHeaders(options.cors ?? false);
  const parseJson = express.json({ limit: options.bodyLimit ?? '100kb' }) as unknown as (
    req: IncomingMessage,
    res: ServerResponse,
    next: (err?: unknown) => void,
  ) => void;
  const answer = (res: ServerResponse, status: number, body: unknown, extra?: Record<string, string>) => {
    const json = JSON.stringify(body);
    res
      .writeHead(status, {
        ...headers,
        ...extra,
        'Content-Type': 'application/json; charset=utf-8',
        'Content-Length': Buffer.byteLength(json),
      })
      .end(json);
  };
  return {
    headers,
    json: (route, handle) => (req, res) => {
      const endTimer = options.metrics.httpDuration.startTimer({ method: req.method, route });
      res.once('finish', () => endTimer({ status: String(res.statusCode) }));
      const fail = (err: unknown) => {
        const { status, errors } = describeError(err, options.log, req.method, req.url);
        if (!res.headersSent) answer(res, status, { errors });
      };
      parseJson(req, res, (err) => {
        if (err) return fail(err);
        Promise.resolve()
          .then(() => handle((req as IncomingMessage & { body?: unknown }).body, req))
          .then((result) => answer(res, result.status ?? 200, result.body, result.headers), fail);
      });
    },
  };
}

/** The plumbing every service shares: security headers, CORS, JSON bodies, health, readiness and metrics. */
export function createHttpApp(options: HttpAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  const kit = rawKit(options);
  const rawRoutes = new Map(Object.entries(options.rawRoutes?.(kit) ?? {}));
  rawRoutesOf.set(app, rawRoutes);
  for (const [route, handler] of rawRoutes) {
    const [method, path] = route.split(' ') as [string, string];
    const register = { GET: 'get', HEAD: 'head', POST: 'post' } as const;
    const verb = register[method as keyof typeof register];
    if (!verb) throw new Error(`raw route ${route}: only GET, HEAD and POST`);
    app[verb](path, (req: IncomingMessage, res: ServerResponse) => handler(req, res));
  }
  app.use(options.metrics.timeRequests);
  app.use(helmet());
  if (options.cors) app.use(cors());
  app.use(express.json({ limit: options.bodyLimit ?? '100kb' }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const readiness = await options.readiness();
    res.status(readiness.ready ? 200 : 503).json(readiness);
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

export function listen(app: Express, port: number, host?: string): Promise<Server> {
  const rawRoutes = rawRoutesOf.get(app) ?? new Map<string, RawHandler>();
  const server = createServer((req, res) => {
    const query = req.url!.indexOf('?');
    const path = query === -1 ? req.url! : req.url!.slice(0, query);
    const raw = rawRoutes.size > 0 ? rawRoutes.get(`${req.method} ${path}`) : undefined;
    if (raw) raw(req, res);
    else app(req, res);
  });
  return new Promise((resolve, reject) => {
    server.listen(port, host ?? '::', () => resolve(server));
    server.keepAliveTimeout = 65_000;
    server.once('error', reject);
  });
}

/** Stops accepting connections, lets requests in flight finish (up to `graceMs`), then closes the rest. */
export async function closeServer(server: Server, graceMs = 10_000): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
}
