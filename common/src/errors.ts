import type { ErrorRequestHandler, RequestHandler } from 'express';
import type { z } from 'zod';
import { toIssues } from './events.js';
import { TransportError, unavailableMessage } from './transport.js';

export interface ErrorItem {
  message: string;
  field?: string;
}

/** An error that reaches the client as `{"errors": [...]}` with its status; anything else is a 500. */
export class HttpError extends Error {
  /** Sent with the answer (`WWW-Authenticate` with a 401). */
  readonly headers?: Record<string, string>;

  constructor(
    readonly status: number,
    readonly errors: ErrorItem[],
    /** `cause`: what went wrong inside, for the log only (the client gets `errors`); `headers` to send. */
    options?: ErrorOptions & { headers?: Record<string, string> },
  ) {
    super(errors.map((e) => e.message).join('; '), options);
    this.headers = options?.headers;
  }

  static badRequest(message: string, field?: string): HttpError {
    return new HttpError(400, [{ message, ...(field ? { field } : {}) }]);
  }

  static notFound(message: string): HttpError {
    return new HttpError(404, [{ message }]);
  }

  /** A 503 saying what is unavailable; `cause`, with the detail (an address), goes to the log only. */
  static unavailable(message: string, cause?: unknown): HttpError {
    return new HttpError(503, [{ message }], cause === undefined ? undefined : { cause });
  }

  static fromZod(error: z.ZodError, fieldPrefix = ''): HttpError {
    return new HttpError(400, toIssues(error, fieldPrefix));
  }
}

/** Parses `input` with `schema`, or throws a 400 naming each offending field. */
export function parseOr400<T>(schema: z.ZodType<T>, input: unknown, fieldPrefix = ''): T {
  const result = schema.safeParse(input);
  if (!result.success) throw HttpError.fromZod(result.error, fieldPrefix);
  return result.data;
}

export const notFoundHandler: RequestHandler = (req, _res, next) => {
  next(HttpError.notFound(`No route for ${req.method} ${req.path}`));
};

/**
 * The one place an error becomes a response: JSON always, never a stack trace. Errors raised by the body
 * parser (bad JSON, too large, wrong charset) carry their own 4xx status and are reported as such.
 */
export function errorHandler(log: {
  warn: (obj: object, msg: string) => void;
  error: (obj: object, msg: string) => void;
}): ErrorRequestHandler {
  return (err: unknown, req, res, next) => {
    if (res.headersSent) return next(err);
    const { status, errors, headers } = describeError(err, log, req.method, req.originalUrl);
    if (headers) res.set(headers);
    res.status(status).json({ errors });
  };
}

type ErrorLog = Parameters<typeof errorHandler>[0];

/** The status and JSON errors for what a handler threw, logged: a warning for 4xx, an error for 5xx. */
export function describeError(err: unknown, log: ErrorLog, method?: string, url?: string) {
  const { status, errors } = describe(err);
  if (status >= 500) log.error({ err, method, url }, 'request failed');
  else log.warn({ status, method, url, errors }, 'request refused');
  return { status, errors, headers: err instanceof HttpError ? err.headers : undefined };
}

const bodyParserMessages: Record<string, string> = {
  'entity.parse.failed': 'The body is not valid JSON',
  'entity.too.large': 'The body is too large',
  'entity.not.utf8': 'The body is not valid UTF-8',
  'entity.too.deep': 'The body is nested too deep',
  'encoding.unsupported': 'The body encoding is not supported',
  'charset.unsupported': 'The body charset is not supported',
  'request.aborted': 'The request was aborted',
  'request.size.invalid': 'The body size does not match its Content-Length',
  'stream.encoding.set': 'The body could not be read',
};

function describe(err: unknown): { status: number; errors: ErrorItem[] } {
  if (err instanceof HttpError) return { status: err.status, errors: err.errors };
  // The event log is out of reach (the HTTP bus, NATS): the client should try again, as for any 503. Its
  // message names what is out of reach; where it lives is in the error, which describeError logs.
  if (err instanceof TransportError) return { status: 503, errors: [{ message: unavailableMessage(err) }] };
  const maybe = err as { status?: unknown; statusCode?: unknown; type?: unknown; expose?: unknown };
  const status = Number(maybe.status ?? maybe.statusCode);
  if (Number.isInteger(status) && status >= 400 && status < 500) {
    const known = typeof maybe.type === 'string' ? bodyParserMessages[maybe.type] : undefined;
    if (known) return { status, errors: [{ message: known, field: 'body' }] };
    // Express's router refuses a path whose percent-encoding does not decode (a URIError, status 400).
    if (err instanceof URIError) {
      return { status, errors: [{ message: 'The URL path is not valid percent-encoding', field: 'path' }] };
    }
    return { status, errors: [{ message: 'The request could not be processed' }] };
  }
  return { status: 500, errors: [{ message: 'Internal error' }] };
}
