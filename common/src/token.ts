import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { HttpError } from './errors.js';

/**
 * EVENT_BUS_TOKEN (docs/event-bus.md, "Who may use the event path"): when set, every publish, read and
 * delivery of the event path carries `Authorization: Bearer <token>`, and the bus and the services refuse
 * a request without it. Unset, the event path is the course's open bus, for requests addressed to the
 * system's own names (`isInternalHost`).
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

/**
 * Whether a Host header names this system from inside: an IP address, `localhost` (or `*.localhost`), a
 * one-label name (a Kubernetes Service or a compose container: `event-bus-srv:4005`) or a cluster name
 * (`*.svc`, `*.svc.cluster.local`). A browser sends the page's own host, so a web page that made its
 * domain resolve to 127.0.0.1 (DNS rebinding) gets here with a dotted public name, and is refused. No
 * Host at all (HTTP/1.0) is no browser.
 */
export function isInternalHost(host: string | undefined): boolean {
  if (host === undefined || host === '') return true;
  const name = (host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.replace(/:\d*$/, ''))
    .toLowerCase()
    .replace(/\.$/, '');
  if (name.startsWith('[') || isIP(name) !== 0) return true;
  if (name === 'localhost' || name.endsWith('.localhost')) return true;
  return !name.includes('.') || /\.svc(\.cluster\.local)?$/.test(name);
}

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

  /**
   * Throws a 401 (with `WWW-Authenticate: Bearer`) unless the request carries the token. Without a token
   * (the open bus), throws a 403 for a request addressed to a public name (`isInternalHost`): the event
   * path is for the system's own processes, which reach each other by address or Service name.
   */
  check(req: IncomingMessage): void {
    if (!this.expected) {
      if (isInternalHost(req.headers.host)) return;
      throw new HttpError(403, [
        {
          message:
            'The event path answers only requests addressed to an IP address, localhost or a Service name ' +
            '(set EVENT_BUS_TOKEN to reach it by another name)',
          field: 'host',
        },
      ]);
    }
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
