import { randomUUID } from 'node:crypto';
import type { OutgoingEvent, StoredEvent } from './events.js';
import { HttpClient } from './http-client.js';
import { bearerHeader } from './token.js';

/**
 * How a service reaches the event log. The HTTP event-bus is the default; NATS JetStream implements the
 * same calls (nats-transport.ts) and the services do not change (docs/event-bus.md).
 */
export interface EventTransport {
  /**
   * Resolves once the event is durably stored; publishing the same `id` twice stores it once. Events
   * published one after the other are stored in that order.
   */
  publish(event: OutgoingEvent): Promise<{ seq: number; id: string }>;
  /** At most `limit` events with `seq > afterSeq`, in order. */
  fetchAfter(afterSeq: number, limit: number): Promise<StoredEvent[]>;
  /**
   * Delivery run by the transport itself (NATS): `handle` gets every event of the log, in order, in
   * batches, and a batch counts as delivered once it resolved; if it throws, the whole batch is delivered
   * again. `handle` must fill gaps (as the subscriber's `receive` does): once it resolved, every event up
   * to the batch's highest seq counts as delivered. A consumer made for the first time starts at
   * `startSeq` (default 1). Absent for HTTP, where the bus POSTs to `/events`.
   */
  consume?(consumerName: string, handle: (events: StoredEvent[]) => Promise<void>, startSeq?: number): void;
  close(): void | Promise<void>;
}

export class TransportError extends Error {
  override name = 'TransportError';
  constructor(
    message: string,
    /** The bus answered and refused the request (4xx): sending it again as it is would not help. */
    readonly refused = false,
  ) {
    super(message);
  }
}

type WithId<T> = T & { id: string };

/** Why a bus refuses this service: readiness and the logs say it as it is. */
const TOKEN_REFUSED =
  'the event bus refused the token (401): EVENT_BUS_TOKEN must be the same on the bus and every service';

const NETWORK_RETRIES = 2;
const MAX_EVENTS_PER_PUBLISH = 500;

export class HttpTransport implements EventTransport {
  private readonly client = new HttpClient();
  private readonly eventsUrl: string;
  private readonly waiting: {
    event: WithId<OutgoingEvent>;
    resolve: (stored: { seq: number; id: string }) => void;
    reject: (err: unknown) => void;
  }[] = [];
  private sending = false;
  private readonly timeoutMs: number;
  /** `Authorization: Bearer <EVENT_BUS_TOKEN>` on every publish and read, when a token is set. */
  private readonly headers: Record<string, string>;

  constructor(
    readonly busUrl: string,
    options: { timeoutMs?: number; token?: string } = {},
  ) {
    this.eventsUrl = `${busUrl.replace(/\/+$/, '')}/events`;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.headers = bearerHeader(options.token);
  }

  /**
   * Publishes go out one request at a time. While one is on its way, the next ones wait and then go
   * together as one array (one commit on the bus): no delay when idle, one request per round trip under
   * load instead of one per event.
   */
  publish(event: OutgoingEvent): Promise<{ seq: number; id: string }> {
    return new Promise((resolve, reject) => {
      // The id is fixed now, so a retry after a lost answer is stored once.
      this.waiting.push({ event: { ...event, id: event.id ?? randomUUID() }, resolve, reject });
      if (!this.sending) void this.sendWaiting();
    });
  }

  private async sendWaiting(): Promise<void> {
    this.sending = true;
    while (this.waiting.length > 0) {
      const group = this.waiting.splice(0, MAX_EVENTS_PER_PUBLISH);
      try {
        const stored = await this.send(group.length === 1 ? group[0]!.event : group.map((p) => p.event));
        group.forEach((pending, index) => pending.resolve(stored[index]!));
      } catch (err) {
        if (group.length === 1 || !(err instanceof TransportError && err.refused)) {
          group.forEach((pending) => pending.reject(err));
        } else {
          // The bus refused the array: send each alone, so only the event at fault fails.
          for (const pending of group) {
            await this.send(pending.event).then(([stored]) => pending.resolve(stored!), pending.reject);
          }
        }
      }
    }
    this.sending = false;
  }

  /** One event as the course sends it, or an array stored in one commit; retried with the same ids. */
  private async send(
    input: WithId<OutgoingEvent> | WithId<OutgoingEvent>[],
  ): Promise<{ seq: number; id: string }[]> {
    const withIds = Array.isArray(input) ? input : [input];
    const what = `${withIds.map((e) => `${e.type} ${e.id}`).join(', ')}`.slice(0, 300);
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await this.client.request(this.eventsUrl, {
          method: 'POST',
          body: JSON.stringify(input),
          headers: this.headers,
          timeoutMs: this.timeoutMs,
        });
        const answer = parseJson(res.body) as { events?: unknown } | undefined;
        const stored: unknown = Array.isArray(input) ? answer?.events : [answer];
        if (res.status >= 200 && res.status < 300 && isStoredList(stored, withIds.length)) {
          return stored.map((result, index) => ({
            seq: result.seq,
            id: String(result.id ?? withIds[index]!.id),
          }));
        }
        // Not `refused`: each event alone would meet the same 401, so the whole group fails at once.
        if (res.status === 401) throw new TransportError(`${TOKEN_REFUSED}; ${what} not stored`);
        throw new TransportError(
          `event bus refused ${what}: ${res.status} ${res.body.slice(0, 300)}`,
          res.status >= 400 && res.status < 500,
        );
      } catch (err) {
        if (err instanceof TransportError || attempt >= NETWORK_RETRIES) throw wrap(err, this.busUrl);
        await sleep(50 * 2 ** attempt);
      }
    }
  }

  async fetchAfter(afterSeq: number, limit: number): Promise<StoredEvent[]> {
    let res;
    try {
      res = await this.client.request(`${this.eventsUrl}?after=${afterSeq}&limit=${limit}`, {
        method: 'GET',
        headers: this.headers,
        timeoutMs: this.timeoutMs,
      });
    } catch (err) {
      throw wrap(err, this.busUrl);
    }
    const events = res.status === 200 ? parseJson(res.body) : undefined;
    if (res.status === 401) throw new TransportError(TOKEN_REFUSED);
    if (!Array.isArray(events)) {
      throw new TransportError(`event bus answered GET /events with ${res.status}`);
    }
    return events as StoredEvent[];
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
  return new TransportError(`event bus at ${busUrl} unreachable (${code ?? (err as Error).message})`);
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
