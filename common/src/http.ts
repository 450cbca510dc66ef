import type { Server } from 'node:http';
import cors from 'cors';
import express, { type Express } from 'express';
import helmet from 'helmet';
import { errorHandler, notFoundHandler } from './errors.js';
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
}

/** The plumbing every service shares: security headers, CORS, JSON bodies, health, readiness and metrics. */
export function createHttpApp(options: HttpAppOptions): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
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
  return new Promise((resolve, reject) => {
    const server = app.listen(port, host ?? '::', (err?: Error) => (err ? reject(err) : resolve(server)));
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
