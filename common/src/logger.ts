import { pino, type Logger } from 'pino';

export type { Logger };

/** JSON lines on stdout; the service name on every line so mixed logs (npm start, compose) stay readable. */
export function createLogger(service: string, level: string): Logger {
  return pino({
    level,
    base: { service },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Never log what a client could use against us or that leaks internals.
    redact: ['req.headers.authorization', 'req.headers.cookie'],
  });
}
