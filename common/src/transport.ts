import { randomUUID } from 'node:crypto';
import { backoffDelay } from './backoff.js';
import { delay } from './process/delay.js';
import type { IncomingEvent, OutgoingEvent, StoredEvent } from './events.js';
import { EventSocketClient } from './event-socket-client.js';
import { BODY_MAX_BYTES } from './limits.js';
import { eventsAfter, type OwnEventsPublisher } from './own-events.js';
import { bearerHeader } from './token.js';

/**
 * How a service reaches the event log. The HTTP event-bus is the default; NATS JetStream implements the
 * same calls (nats-transport.ts) and the services do not change (docs/event-bus.md).
 */
export interface EventTransport {
  /**
   * Resolves once the event is durably stored; publishing the same `id` twice stores it once. Events
   * published one after the other are stored in that order. With `once`, that holds for ever, whoever
   * publishes it: what a reaction needs, decided by every replica of a service.
   */
  publish(event: OutgoingEvent, options?: PublishOptions): Promise<{ seq: number; id: string }>;
  /**
   * A page of the log after `afterSeq`: at most `limit` events, fewer once they fill PAGE_MAX_BYTES (never
   * none while there is one). Only an empty page says the log has nothing more (see `EventPage`).
   * With `types`, the transport may leave out the events of other types: the page's `throughSeq` then
   * says how far it covers the log, and `limit` counts the events it covers, of any type; its events may
   * come without their `id` and `time` (the SQLite bus leaves them out).
   */
  fetchAfter(afterSeq: number, limit: number, types?: readonly string[]): Promise<EventPage>;
  /**
   * Delivery run by the transport itself (NATS): `handle` gets every event of the log from `startSeq`
   * (default 1) on, in order, in batches, each replica (each process) for itself; a batch counts as
   * delivered once it resolved; if it throws, delivery starts again from the batch's first event, after
   * a growing delay. `handle` must fill gaps (as the subscriber's `receive` does): once it resolved, every
   * event up to the batch's highest seq counts as delivered. `consumerName` is the service's name. Absent
   * for HTTP, where the bus POSTs to `/events`.
   */
  consume?(consumerName: string, handle: (events: StoredEvent[]) => Promise<void>, startSeq?: number): void;
  /**
   * Names the publisher on every publish from now on, so the bus may pass over its own events in its
   * delivery loop and say so in the answer (own-events.ts). Absent where delivery is not the bus's (NATS).
   */
  setPublisher?(publisher: OwnEventsPublisher): void;
  close(): void | Promise<void>;
}

/** How `publish` stores an event. */
export interface PublishOptions {
  /**
   * The id may be stored only once, ever (not only within a transport's duplicate window): a publisher
   * that comes second, even much later, resolves with the one stored.
   */
  once?: boolean;
}

/** What `fetchAfter` resolves with. */
export interface EventPage {
  /**
   * In seq order, from `afterSeq + 1`; a short page is not the end of the log, an empty one is. Each has its
   * id, but in a page of some types, which leaves out what a projection does not read (its id and time).
   */
  events: (IncomingEvent & { seq: number })[];
  /**
   * The head of the log when the page was read, if the transport knows it (every event of the page is at or
   * below it): a reader catching up may stop there, and leave what comes later to delivery.
   */
  headSeq?: number;
  /**
   * Set when the page holds only the types asked for: it covers the log up to this seq (every event of
   * those types up to it is in the page), and a reader goes on after it. Such a page may be empty.
   */
  throughSeq?: number;
}

export class TransportError extends Error {
  override name = 'TransportError';
  constructor(
    /** The detail, for the log: it may name the host and port of what failed. */
    message: string,
    /** The bus answered and refused the request (4xx): sending it again as it is would not help. */
    readonly refused = false,
    /** What failed, in words a client may read (`the event bus`, `NATS`): never an address. */
    readonly what = 'the event log',
  ) {
    super(message);
  }
}

/**
 * What a client is told when the event log failed it: what is unavailable, not where it lives (a 503's
 * message reaches browsers; the address stays in the log, with the error).
 */
export function unavailableMessage(err: unknown): string {
  const what = err instanceof TransportError ? err.what : 'the event log';
  const subject = what.charAt(0).toUpperCase() + what.slice(1);
  return err instanceof TransportError && err.refused
    ? `${subject} refused the request`
    : `${subject} is unavailable, try again`;
}

type WithId<T> = T & { id: string };

/** What a publish request stored, and the seq through which the bus passed over the publisher's own events. */
interface Sent {
  stored: { seq: number; id: string }[];
  passedThrough?: number;
}

/** Why a bus refuses this service: readiness and the logs say it as it is. */
const TOKEN_REFUSED =
  'the event bus refused the token (401): EVENT_BUS_TOKEN must be the same on the bus and every service';

const NETWORK_RETRIES = 2;
/** A publish that met a network error is sent again after 50 ms, then 100 ms. */
const NETWORK_RETRY_BACKOFF = { firstMs: 50, maxMs: 1000 };
const BUS = 'the event bus';
/** The most events one publish request carries; and its body is at most BODY_MAX_BYTES, what the bus takes. */
const MAX_EVENTS_PER_PUBLISH = 500;

interface Pending {
  event: WithId<OutgoingEvent>;
  /** The event as JSON, made once: it sizes the request and is sent as it is. */
  json: string;
  resolve: (stored: { seq: number; id: string }) => void;
  reject: (err: unknown) => void;
}

export class HttpTransport implements EventTransport {
  // Publishes go on the bus's socket where it takes one (docs/event-bus.md, "The event path's socket").
  private readonly client = new EventSocketClient();
  private readonly eventsUrl: string;
  /** `eventsUrl` parsed once, for the publishes. */
  private readonly publishUrl: URL;
  private readonly waiting: Pending[] = [];
  private sending = false;
  private readonly timeoutMs: number;
  /** `Authorization: Bearer <EVENT_BUS_TOKEN>` on every publish and read, when a token is set. */
  private readonly headers: Record<string, string>;
  /** The subscriber this service is on the bus, named on each publish (`setPublisher`). */
  private publisher: OwnEventsPublisher | undefined;

  constructor(
    readonly busUrl: string,
    options: { timeoutMs?: number; token?: string } = {},
  ) {
    this.eventsUrl = `${busUrl.replace(/\/+$/, '')}/events`;
    this.publishUrl = new URL(this.eventsUrl);
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.headers = bearerHeader(options.token);
  }

  setPublisher(publisher: OwnEventsPublisher): void {
    this.publisher = publisher;
  }

  /**
   * Publishes go out one request at a time. While one is on its way, the next ones wait and then go
   * together as one array (one commit on the bus): no delay when idle, one request per round trip under
   * load instead of one per event.
   */
  publish(event: OutgoingEvent, _options?: PublishOptions): Promise<{ seq: number; id: string }> {
    // `once` changes nothing here: the bus keeps every id it stored for ever (a unique column in SQLite).
    return new Promise((resolve, reject) => {
      // The id is fixed now, so a retry after a lost answer is stored once.
      const withId =
        event.id === undefined
          ? Object.assign({}, event, { id: randomUUID() })
          : (event as WithId<OutgoingEvent>);
      this.waiting.push({ event: withId, json: JSON.stringify(withId), resolve, reject });
      if (!this.sending) void this.sendWaiting();
    });
  }

  private async sendWaiting(): Promise<void> {
    this.sending = true;
    while (this.waiting.length > 0) {
      const group = this.nextGroup();
      try {
        this.resolve(group, await this.send(group));
      } catch (err) {
        if (group.length === 1 || !(err instanceof TransportError && err.refused)) {
          group.forEach((pending) => pending.reject(err));
        } else {
          // The bus refused the array: send each alone, so only the event at fault fails.
          for (const pending of group) {
            await this.send([pending]).then((sent) => this.resolve([pending], sent), pending.reject);
          }
        }
      }
    }
    this.sending = false;
  }

  /** Hands the publisher its own events the bus passed over, if it did, then resolves each publish. */
  private resolve(group: Pending[], { stored, passedThrough }: Sent): void {
    if (passedThrough !== undefined && this.publisher) {
      const events = group.map((pending) => pending.event);
      this.publisher.passedOver(passedThrough, eventsAfter(passedThrough, events, stored));
    }
    group.forEach((pending, index) => pending.resolve(stored[index]!));
  }

  /** The waiting events that fit one request: up to MAX_EVENTS_PER_PUBLISH, within BODY_MAX_BYTES (one at least). */
  private nextGroup(): Pending[] {
    let count = 0;
    let bytes = 1; // `[`, then each event with the `,` or `]` after it
    for (const pending of this.waiting) {
      bytes += Buffer.byteLength(pending.json) + 1;
      if (count > 0 && (count === MAX_EVENTS_PER_PUBLISH || bytes > BODY_MAX_BYTES)) break;
      count++;
    }
    return this.waiting.splice(0, count);
  }

  /**
   * One event as the course sends it, or an array stored in one commit; retried with the same ids. Each
   * try names the publisher with what it has applied then.
   */
  private async send(group: Pending[]): Promise<Sent> {
    const batch = group.length > 1;
    const body = batch ? `[${group.map((pending) => pending.json).join(',')}]` : group[0]!.json;
    const withIds = group.map((pending) => pending.event);
    const what = `${withIds.map((e) => `${e.type} ${e.id}`).join(', ')}`.slice(0, 300);
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.client.request(this.publishUrl, {
          method: 'POST',
          body,
          headers: this.publishHeaders(),
          timeoutMs: this.timeoutMs,
        });
        const answer = parseJson(res.body) as { events?: unknown } | undefined;
        const stored: unknown = batch ? answer?.events : [answer];
        if (res.status >= 200 && res.status < 300 && isStoredList(stored, withIds.length)) {
          const passed = Number(res.headers['x-events-passed-through']);
          return {
            stored: stored.map((result, index) => ({
              seq: result.seq,
              id: String(result.id ?? withIds[index]!.id),
            })),
            passedThrough: this.publisher && Number.isSafeInteger(passed) && passed >= 0 ? passed : undefined,
          };
        }
        // Not `refused`: each event alone would meet the same 401, so the whole group fails at once.
        if (res.status === 401) throw new TransportError(`${TOKEN_REFUSED}; ${what} not stored`);
        throw new TransportError(
          `event bus refused ${what}: ${res.status} ${res.body.slice(0, 300)}`,
          res.status >= 400 && res.status < 500,
          BUS,
        );
      } catch (err) {
        if (err instanceof TransportError || attempt >= NETWORK_RETRIES) throw wrap(err, this.busUrl);
        await sleep(backoffDelay(attempt, NETWORK_RETRY_BACKOFF));
      }
    }
  }

  /** The token, and who publishes (`X-Events-Publisher`, `X-Events-Applied`) if set. */
  private publishHeaders(): Record<string, string> {
    const publisher = this.publisher;
    if (!publisher) return this.headers;
    return Object.assign({}, this.headers, {
      'X-Events-Publisher': publisher.name,
      'X-Events-Applied': String(publisher.appliedSeq()),
    });
  }

  async fetchAfter(afterSeq: number, limit: number, types?: readonly string[]): Promise<EventPage> {
    const only = types ? `&types=${types.map(encodeURIComponent).join(',')}` : '';
    let res;
    try {
      res = await this.client.request(`${this.eventsUrl}?after=${afterSeq}&limit=${limit}${only}`, {
        method: 'GET',
        headers: this.headers,
        timeoutMs: this.timeoutMs,
      });
    } catch (err) {
      throw wrap(err, this.busUrl);
    }
    const answer = res.status === 200 ? parseJson(res.body) : undefined;
    if (res.status === 401) throw new TransportError(TOKEN_REFUSED);
    // A page of some types is `{events, through}`; a bus that does not filter answers every type, an array.
    const typed = typedPage(answer);
    const events = typed ? typed.events : answer;
    if (!Array.isArray(events)) {
      throw new TransportError(`event bus answered GET /events with ${res.status}`, false, BUS);
    }
    const head = Number(res.headers['x-last-seq']);
    return {
      events: events as EventPage['events'],
      headSeq: Number.isSafeInteger(head) ? head : undefined,
      ...(typed ? { throughSeq: typed.through } : {}),
    };
  }

  close(): void {
    this.client.close();
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function typedPage(answer: unknown): { events: unknown[]; through: number } | undefined {
  const page = answer as { events?: unknown; through?: unknown } | undefined;
  return typeof page === 'object' &&
    page !== null &&
    Array.isArray(page.events) &&
    Number.isSafeInteger(page.through)
    ? (page as { events: unknown[]; through: number })
    : undefined;
}

function isStoredList(value: unknown, length: number): value is { seq: number; id?: unknown }[] {
  return (
    Array.isArray(value) &&
    value.length === length &&
    value.every((item) => Number.isInteger((item as { seq?: unknown } | undefined)?.seq))
  );
}

function wrap(err: unknown, busUrl: string): TransportError {
  if (err instanceof TransportError) return err;
  const code = (err as { code?: string }).code;
  return new TransportError(
    `event bus at ${busUrl} unreachable (${code ?? (err as Error).message})`,
    false,
    BUS,
  );
}

// The one delay of the project (common/src/process/delay.ts), under the name the services know it by.
export const sleep = (ms: number): Promise<void> => delay(ms);
