import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { HttpError } from './errors.js';

/**
 * EVENT_BUS_TOKEN (docs/event-bus.md, "Who may use the event path"): when set, every publish, read and
 * delivery of the event path carries `Authorization: Bearer <token>`, and the bus and the services refuse
 * a request without it. Unset, the event path is the course's open bus.
 */

/**
 * The token's form: RFC 6750's `b64token` (letters, digits, `-._~+/`, then `=` padding), so a hex,
 * base64 or base64url value fits as it is in a header, a Kubernetes Secret and a nats-server's `--auth`;
 * at least 16 characters before the padding, so that it cannot be guessed.
 */
export const TOKEN_PATTERN = /^[A-Za-z0-9._~+/-]{16,1024}=*$/;

/** The `Authorization` header that carries `token`, or none when no token is set. */
export function bearerHeader(token: string | undefined): Record<string, string> {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

const digest = (value: string) => createHash('sha256').update(value).digest();

const refusal = (message: string) =>
  new HttpError(401, [{ message, field: 'authorization' }], { headers: { 'WWW-Authenticate': 'Bearer' } });

/**
 * Whether a request carries the token. Compared in constant time: both sides are hashed first, so the
 * comparison takes as long whatever the value sent, its length included.
 */
export class TokenCheck {
  private readonly expected: Buffer | undefined;

  constructor(token: string | undefined) {
    this.expected = token ? digest(token) : undefined;
  }

  /** Whether a token is set (else every request passes, as on the course's bus). */
  get required(): boolean {
    return this.expected !== undefined;
  }

  /** Throws a 401 (with `WWW-Authenticate: Bearer`) unless the request carries the token. */
  check(req: IncomingMessage): void {
    if (!this.expected) return;
    const header = req.headers.authorization;
    const match = header === undefined ? null : /^Bearer +(\S+) *$/i.exec(header);
    if (!match) {
      throw refusal('This route needs the event bus token: send Authorization: Bearer <EVENT_BUS_TOKEN>');
    }
    if (!timingSafeEqual(digest(match[1]!), this.expected)) {
      throw refusal('The event bus token is not the right one');
    }
  }
}
