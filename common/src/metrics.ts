import type { RequestHandler } from 'express';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** One registry per service, with Node's default metrics and the HTTP request counts and durations. */
export function createMetrics(service: string) {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });

  const httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP requests served, by method, route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [registry],
  });
  const socketExchanges = new Counter({
    name: 'event_socket_exchanges_total',
    help: "Requests of POST /events answered as messages on the event path's socket (also in http_request_duration_seconds)",
    registers: [registry],
  });
  const eventsApplied = new Counter({
    name: 'events_applied_total',
    help: 'Events applied to this service state, by type',
    labelNames: ['type'] as const,
    registers: [registry],
  });
  const eventsIgnored = new Counter({
    name: 'events_ignored_total',
    help: 'Events acknowledged but not applied: already applied (duplicate), unknown type, or unknown target',
    labelNames: ['reason'] as const,
    registers: [registry],
  });

  const timeRequests: RequestHandler = (req, res, next) => {
    const end = httpDuration.startTimer();
    res.once('finish', () => {
      // The route pattern, not the path, so ids do not explode the label set.
      const route = (req.route as { path?: string } | undefined)?.path ?? 'unmatched';
      end({ method: req.method, route: String(route), status: String(res.statusCode) });
    });
    next();
  };

  return { registry, httpDuration, socketExchanges, eventsApplied, eventsIgnored, timeRequests };
}

export type Metrics = ReturnType<typeof createMetrics>;
