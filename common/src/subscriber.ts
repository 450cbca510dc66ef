import { randomUUID } from 'node:crypto';
import { backoffDelay } from './backoff.js';
import { AppliedCount, AppliedListeners } from './applied-events.js';
import { asBlogEvent, type IncomingEvent, type OutgoingEvent } from './events.js';
import { HttpError } from './errors.js';
import { logPages } from './log-pages.js';
import { Outbox } from './outbox.js';
import type { Logger } from './logger.js';
import type { Metrics } from './metrics.js';
import { OwnEvents, type OwnEvent } from './own-events.js';
import { derivedEventId, type DeliveryHeaders, type Projection } from './projection.js';
import { CommandWaits } from './subscriber-waits.js';
import { sleep, unavailableMessage, type EventTransport } from './transport.js';

/** A delivery's `seq` past the head of the log: the bus never sends one, so it is refused (409). */
const SEQ_NOT_IN_LOG = new HttpError(409, [{ message: 'This seq is not in the event log', field: 'seq' }]);

/** The most reactions an answer to a delivery carries (the bus reads up to 8 MiB); more are published. */
const MAX_REPLY_REACTIONS = 200;
/**
 * How long a command waits for the delivery of its own event before reading it from the log, if no
 * delivery failed meanwhile: the delivery is sent right behind the publish's answer, so it is late only
 * when something is wrong (the bus went away after storing it, or the transport does not deliver).
 */
const COMMAND_DELIVERY_WAIT_MS = 1000;

/**
 * Events of a page applied between two turns of the event loop: meanwhile the transport reads on, so the
 * bus writes the next page while this one is applied rather than waiting for room on the socket. Nothing
 * else of this subscriber runs meanwhile: its steps are queued (`enqueue`).
 */
export const APPLY_SLICE = 1000;

/** While the log is unreachable at start, catch-up is tried again after 100 ms doubling up to 5 s. */
const CATCH_UP_BACKOFF = { firstMs: 100, maxMs: 5000 };

/**
 * Runs a projection against the log: catch-up at start, idempotent in-order application by `seq`, gap
 * filling, an outbox for reactions, and read-your-writes for commands. The protocol is docs/event-bus.md.
 */
export class Subscriber<State> {
  state: State;
  /** The highest `seq` of the log applied to `state`. */
  appliedSeq = 0;
  caughtUp = false;
  /** Reactions not yet known to be in the log, by their derived id, with the seq of their trigger. */
  private readonly outbox = new Outbox();
  /** Everything that reads or changes the state runs through this chain, one step at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  private stopped = false;
  /** Commands waiting for their event to be applied, by seq. */
  private readonly commandWaits = new CommandWaits();
  /** Commands' own events once stored, by id: applied in place of a pass over their seq (`passOver`). */
  private readonly commandEvents = new Map<string, IncomingEvent & { seq: number }>();
  /** Own events the bus passed over, to apply from the publish's answer (`applyOwnEvents`). */
  private readonly ownEvents = new OwnEvents();
  private namedAsPublisher = false;
  /** Commands' views of the state (publishAndApply), by the id of their event, each taken once. */
  private readonly viewsByEventId = new Map<string, () => void>();
  /** Told of every event once applied (see `onApplied`). */
  private readonly appliedListeners: AppliedListeners;
  private readonly appliedCount: AppliedCount;

  constructor(
    private readonly projection: Projection<State>,
    readonly transport: EventTransport,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** Its name among the bus's subscribers: with it, its publishes say so (`nameAsPublisher`). */
    private readonly subscriberName?: string,
  ) {
    this.state = projection.initial();
    this.appliedListeners = new AppliedListeners(log);
    this.appliedCount = new AppliedCount(metrics.eventsApplied);
  }

  /**
   * Catches up with the log, retrying while the bus is unreachable; resolves once caught up, with the seq
   * up to which every event is applied and its reactions are stored (a delivery may start after it), or
   * with undefined if stopped before.
   */
  async start(): Promise<number | undefined> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.enqueue(() => this.fetchUntil(Infinity, this.catchUpTypes()));
        // Read in the same step as the flush: an event applied later may still owe its reactions.
        const handledSeq = await this.enqueue(async () => {
          await this.outbox.publish(this.transport, this.log);
          return this.appliedSeq;
        });
        this.caughtUp = true;
        this.log.info({ appliedSeq: this.appliedSeq }, 'caught up with the event log');
        return handledSeq;
      } catch (err) {
        const delay = backoffDelay(attempt, CATCH_UP_BACKOFF);
        this.log.warn({ err: (err as Error).message, retryInMs: delay }, 'catch-up failed, retrying');
        await sleep(delay);
      }
    }
    return undefined;
  }

  /**
   * The types the catch-up at start asks the log for, if it may leave the others out: those the projection
   * acts on, unless it reacts (the reactions it finds in the log are how it knows they are no longer owed,
   * so it reads every event).
   */
  private catchUpTypes(): readonly string[] | undefined {
    return this.projection.react ? undefined : this.projection.types;
  }

  stop(): void {
    this.stopped = true;
    this.commandWaits.stop();
  }

  /**
   * Whether the bus may skip the types the projection does not act on (`X-Events-Others: skip`): not while
   * someone is told of every event applied (`onApplied`).
   */
  get skipsOtherTypes(): boolean {
    return this.projection.types !== undefined && this.appliedListeners.size === 0;
  }

  /**
   * Applies events delivered to `POST /events`, already validated, in order. Resolves once every one is
   * applied (or known to be) and the reactions are handed over; rejects with 503 if the bus is unreachable
   * (the bus will deliver again) or 409 for a `seq` past the head of the log (the same 409 whatever the head).
   *
   * The reactions go back in the answer when the bus said it takes them there (`replyAccepted`, see
   * docs/event-bus.md, "Reactions in the answer"): the resolved array is what to answer with, and it stays
   * in the outbox until it shows up in the log, or until the bus says (`busCursor`, the seq up to which it
   * has stored what this service answered) that it has it. Otherwise they are published here and the
   * array is empty.
   *
   * With `through` (`X-Events-Through`), every seq after `busCursor` up to it that is not among `events`
   * is one the bus passed over, of a type this service does not act on: counted as applied, not fetched.
   */
  receive(
    events: IncomingEvent[],
    { replyAccepted = false, busCursor, through }: DeliveryHeaders = {},
  ): Promise<OutgoingEvent[]> {
    const received = this.enqueue(async () => {
      // Only the bus knows its cursor, and it never passes what this service acknowledged.
      if (busCursor !== undefined && busCursor <= this.appliedSeq) this.outbox.forgetStored(busCursor);
      const passedThrough = busCursor !== undefined && through !== undefined ? through : undefined;
      // What the bus's cursor passed but this service lacks (an event it refused, dead-lettered) is read.
      if (passedThrough !== undefined && busCursor! > this.appliedSeq) await this.fetchUntil(busCursor!);
      for (const event of events) {
        if (event.seq === undefined) {
          this.applyOne(event);
          continue;
        }
        if (event.seq <= this.appliedSeq) {
          this.metrics.eventsIgnored.inc({ reason: 'duplicate' });
          continue;
        }
        if (event.seq > this.appliedSeq + 1) {
          if (passedThrough !== undefined && event.seq <= passedThrough) this.passOver(event.seq - 1);
          else await this.fetchUntil(event.seq - 1);
        }
        // The same answer whatever the head: it must not tell a sender where the log ends.
        if (event.seq > this.appliedSeq + 1) throw SEQ_NOT_IN_LOG;
        if (event.seq === this.appliedSeq + 1) this.applyOne(event);
      }
      if (passedThrough !== undefined) this.passOver(passedThrough);
      if (replyAccepted && this.outbox.size <= MAX_REPLY_REACTIONS) {
        return [...this.outbox.values()].map((entry) => entry.reaction);
      }
      await this.outbox.publish(this.transport, this.log);
      return [];
    });
    // A command waiting for its event need not wait for a delivery that failed: it reads the log.
    received.catch(() => this.commandWaits.missed());
    return received;
  }

  /**
   * Counts the seqs up to `toSeq` as applied: the bus passed over them, of types this service does not
   * act on. A command's own event among them (its type is not one the bus sends here) is applied in its
   * place, from what the command published.
   */
  private passOver(toSeq: number): void {
    if (toSeq <= this.appliedSeq) return;
    const own = [...this.commandEvents.values()].filter((e) => e.seq > this.appliedSeq && e.seq <= toSeq);
    for (const event of own
      .concat(this.ownEvents.between(this.appliedSeq, toSeq))
      .sort((a, b) => a.seq - b.seq)) {
      if (event.seq <= this.appliedSeq) continue; // the same seq from both lists
      this.appliedSeq = event.seq - 1;
      this.applyOne(event);
    }
    this.appliedSeq = toSeq;
    this.commandWaits.applied(this.appliedSeq);
  }

  /**
   * Publishes a command's event and resolves once this service's state includes it (read your writes):
   * at once if it is the very next event of the log; else from the delivery, which is on its way; the gap
   * is read from the log only if a delivery failed meanwhile or none came (COMMAND_DELIVERY_WAIT_MS).
   *
   * A command answers the state its own event created, yet later events (a reaction to it) may be applied
   * before the caller reads the state. So `view` reads what the answer needs the moment that event is
   * applied here, before any later one; the result has no `view` if the event was stored but not applied
   * here (the bus went away).
   */
  async publishAndApply<View>(
    event: OutgoingEvent,
    view?: (state: State) => View,
  ): Promise<{ seq: number; id: string; view?: View }> {
    // The id is fixed before the publish, since the delivery may apply the event before the publish answers.
    // Object.assign rather than a spread with a property after it, which Node 20's V8 copies slowly: this
    // and the copies below are made for every command and every reaction.
    const withId = Object.assign({}, event, { id: event.id ?? randomUUID() });
    if (!this.namedAsPublisher) this.nameAsPublisher();
    let taken: { view: View } | undefined;
    if (view) this.viewsByEventId.set(withId.id, () => (taken = { view: view(this.state) }));
    try {
      let stored: { seq: number; id: string };
      try {
        stored = await this.transport.publish(withId);
      } catch (err) {
        throw HttpError.unavailable(unavailableMessage(err), err);
      }
      const own = Object.assign({}, withId, stored);
      this.commandEvents.set(own.id, own);
      try {
        // Already applied when its delivery came before the publish's answer: nothing to wait for.
        if (this.appliedSeq < stored.seq) {
          const seq = stored.seq;
          await this.enqueue(() => {
            if (this.appliedSeq === seq - 1) this.applyOne(own);
          });
          const outcome = await this.commandWaits.wait(seq, this.appliedSeq, COMMAND_DELIVERY_WAIT_MS);
          if (outcome === 'missed') await this.enqueue(() => this.fetchUntil(seq));
        }
      } catch {
        // Stored, so the command succeeded; the delivery will bring this service up to date shortly.
        this.log.warn({ seq: stored.seq, id: stored.id }, 'published, but not yet applied here');
      }
      return taken ? { seq: stored.seq, id: stored.id, view: taken.view } : stored;
    } finally {
      this.viewsByEventId.delete(withId.id);
      this.commandEvents.delete(withId.id);
    }
  }

  /** From now on, publishes name this service, so the bus may leave out its own events (`applyOwnEvents`). */
  private nameAsPublisher(): void {
    this.namedAsPublisher = true;
    if (!this.subscriberName || !this.transport.setPublisher) return;
    this.transport.setPublisher({
      name: this.subscriberName,
      appliedSeq: () => this.ownEvents.appliedOrQueued(this.appliedSeq),
      passedOver: (passedThrough, events) => this.applyOwnEvents(passedThrough, events),
    });
  }

  /**
   * The bus passed over this service's own new `events` in its loop (docs/event-bus.md, "A publisher's own
   * events"): in the queue, counts the seqs up to `passedThrough` as applied, then applies its own in seq
   * order. Reactions they cause are published at once, since no delivery's answer will carry them.
   */
  private applyOwnEvents(passedThrough: number, events: OwnEvent[]): void {
    this.ownEvents.add(events);
    const applied = this.enqueue(async () => {
      this.passOver(passedThrough);
      for (const event of this.ownEvents.between(this.appliedSeq, Infinity)) {
        if (event.seq === this.appliedSeq + 1) this.applyOne(event);
      }
      this.ownEvents.forget(this.appliedSeq);
      const triggers = new Set(events.map((event) => event.seq));
      const owed = [...this.outbox.values()].filter((entry) => triggers.has(entry.triggerSeq ?? 0));
      if (owed.length === 0) return;
      // No cursor of the bus's may now drop them from the outbox: they leave it once published.
      for (const entry of owed) entry.triggerSeq = undefined;
      await this.outbox.publish(this.transport, this.log);
    });
    applied.catch((err: Error) => {
      this.log.warn({ err: err.message }, 'own events not applied from the answer');
      this.commandWaits.missed(); // the commands waiting read the log
    });
  }

  /** Takes the view of the command whose event has this id, if one waits (publishAndApply); logs one that throws. */
  private takeCommandView(eventId: string): void {
    const take = this.viewsByEventId.get(eventId);
    if (!take) return;
    this.viewsByEventId.delete(eventId);
    try {
      take();
    } catch (err) {
      this.log.error({ err, id: eventId }, "a command's view of the state failed");
    }
  }

  /**
   * Brings the state up to the head of the log (used before answering "not found"). An unreachable bus is a
   * 503, so the client tries again, rather than a 500 (seen under chaos: a comment while the bus was down).
   */
  refresh(): Promise<void> {
    return this.enqueue(() => this.fetchUntil(Infinity)).catch((err: Error) => {
      throw err instanceof HttpError ? err : HttpError.unavailable(unavailableMessage(err), err);
    });
  }

  /**
   * Calls `listener` after each event is applied (or acknowledged as changing nothing), in log order, with
   * the state already updated; returns a function that removes it. A listener that throws is logged and
   * changes nothing else. For pushing changes out, such as query's `GET /posts/live`. The catch-up at start
   * may pass over old events of types the projection does not act on (`fetchUntil`): a listener is told of
   * every event applied, and of the last CATCH_UP_WHOLE_TAIL of the log at start whatever their type.
   */
  onApplied(listener: (event: IncomingEvent) => void): () => void {
    return this.appliedListeners.add(listener);
  }

  private enqueue<T>(step: () => Promise<T> | T): Promise<T> {
    const result = this.queue.then(step);
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Fetches and applies the log's pages after `appliedSeq` (`logPages`) until `targetSeq` is applied, or the
   * head of the log as the first page reported it. With `types`, the pages hold only those types, but the
   * last CATCH_UP_WHOLE_TAIL events; the seqs a page covers without holding them are counted as applied, as
   * a delivery's passed-over seqs are. Such a page's events may come without their id: none is asked for
   * while a command waits to see its own event applied (its view is taken by id), and a projection that
   * reacts reads every event whole (catchUpTypes).
   */
  private async fetchUntil(targetSeq: number, types?: readonly string[]): Promise<void> {
    const pages = logPages(this.transport, {
      afterSeq: this.appliedSeq,
      targetSeq,
      types,
      mayLeaveOut: () => this.viewsByEventId.size === 0,
    });
    for await (const { events, throughSeq } of pages) {
      let sliceLeft = APPLY_SLICE;
      for (const stored of events) {
        if (--sliceLeft === 0) {
          sliceLeft = APPLY_SLICE;
          await new Promise((resolve) => setImmediate(resolve));
        }
        const inOrder =
          throughSeq === undefined
            ? stored.seq === this.appliedSeq + 1
            : stored.seq > this.appliedSeq && stored.seq <= throughSeq;
        if (!inOrder) {
          throw new Error(`event log page out of order: got seq ${stored.seq} after ${this.appliedSeq}`);
        }
        // The bus validated every known event when it was published: check only the envelope here, which
        // keeps a replay of 100,000 events from spending a fifth of its time in zod.
        if (typeof stored.type === 'string' && isPlainObject(stored.data)) this.applyOne(stored);
        else this.log.warn({ seq: stored.seq, id: stored.id }, 'skipped a malformed event of the log');
        this.appliedSeq = stored.seq;
      }
      if (throughSeq !== undefined && throughSeq > this.appliedSeq) this.appliedSeq = throughSeq;
      this.commandWaits.applied(this.appliedSeq);
    }
  }

  private applyOne(event: IncomingEvent): void {
    // A reaction published before a restart shows up in the log: it is no longer owed.
    if (event.id !== undefined && this.outbox.size > 0) this.outbox.delete(event.id);
    const known = asBlogEvent(event);
    if (!known) {
      this.metrics.eventsIgnored.inc({ reason: 'unknown-type' });
      this.log.debug(logFieldsOf(event), 'event of a type this service does not handle');
    } else {
      const ignored = this.projection.apply(this.state, known);
      if (ignored) {
        this.metrics.eventsIgnored.inc({ reason: ignored });
        this.log.warn({ ...logFieldsOf(event), reason: ignored }, 'event acknowledged but not applied');
      } else {
        this.appliedCount.add(event.type);
        if (this.log.isLevelEnabled('debug')) this.log.debug(logFieldsOf(event), 'event applied');
        for (const reaction of this.projection.react?.(this.state, known) ?? []) {
          const id = derivedEventId(event, reaction.type);
          this.outbox.set(id, { reaction: Object.assign({}, reaction, { id }), triggerSeq: event.seq });
        }
      }
    }
    if (event.seq !== undefined) {
      this.appliedSeq = event.seq;
      // Before any later event changes the state: the command's answer shows what its own event created.
      if (this.viewsByEventId.size > 0 && event.id !== undefined) this.takeCommandView(event.id);
      // A command waiting for its own event (publishAndApply) answers as soon as the delivery brings it.
      this.commandWaits.applied(this.appliedSeq);
    }
    if (this.appliedListeners.size > 0) this.appliedListeners.notify(event);
  }
}

const logFieldsOf = (event: IncomingEvent) => ({ type: event.type, id: event.id, seq: event.seq });

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
