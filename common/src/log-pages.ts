import { PAGE_MAX_EVENTS } from './limits.js';
import type { EventPage, EventTransport } from './transport.js';

// The pages a subscriber reads the log in, to catch up at start or to fill a gap (Subscriber.fetchUntil).

/**
 * A read of the log starts with a page this large, and each page may cover twice the one before, up to
 * PAGE_MAX_EVENTS: the bus answers the first page soon, and stays a page ahead while the subscriber applies one.
 */
const FIRST_PAGE_SIZE = 1000;
/**
 * The newest events of the log that the catch-up at start reads whole, whatever their type, so that what
 * `onApplied` listeners keep of the latest events (query's live stream) is as a full read would leave it.
 */
export const CATCH_UP_WHOLE_TAIL = 1000;

export interface LogPagesRead {
  /** The pages start after this seq: the subscriber's `appliedSeq`. */
  afterSeq: number;
  /** They end once they cover it, or the head of the log as the first page reported it. */
  targetSeq: number;
  /**
   * Only these types, the transport permitting: the first page is then one event, which tells the head,
   * and the last CATCH_UP_WHOLE_TAIL events are read whole. Such a page's events may come without their id.
   */
  types?: readonly string[];
  /** Whether a page of only `types` may be asked for now: not while an event's id is needed. */
  mayLeaveOut?: () => boolean;
}

/**
 * The pages after `afterSeq`, in order, until one comes back empty or `targetSeq` (or the head the first
 * page reported) is covered. Only these end it: a short page may not be the last (a page also ends at a
 * byte budget). The next page is asked for before this one is handed over, so the log is read while the
 * caller applies; the caller must apply each page whole (every seq it covers) before asking for the next.
 */
export async function* logPages(
  transport: Pick<EventTransport, 'fetchAfter'>,
  { afterSeq, targetSeq, types, mayLeaveOut = () => true }: LogPagesRead,
): AsyncGenerator<EventPage> {
  let wholeFrom = Infinity;
  let pageSize = 0;
  const fetchPage = (after: number, first: boolean) => {
    const typed = types !== undefined && !first && after < wholeFrom && mayLeaveOut();
    if (!(first && types))
      pageSize = pageSize === 0 ? FIRST_PAGE_SIZE : Math.min(PAGE_MAX_EVENTS, 2 * pageSize);
    const limit = first && types ? 1 : typed ? Math.min(pageSize, wholeFrom - after) : pageSize;
    const page = transport.fetchAfter(after, limit, typed ? types : undefined);
    page.catch(() => undefined); // awaited below; this only keeps an unused prefetch from going unhandled
    return page;
  };
  let target = targetSeq;
  let coveredSeq = afterSeq;
  let next = coveredSeq < target ? fetchPage(coveredSeq, true) : undefined;
  for (let first = true; next; first = false) {
    const page = await next;
    // Events published meanwhile are delivered: a catch-up under a steady stream of them still ends.
    if (first && page.headSeq !== undefined) target = Math.min(target, page.headSeq);
    if (first) wholeFrom = target - CATCH_UP_WHOLE_TAIL;
    // A page of some types may hold none, and still cover part of the log.
    const covered = Math.max(page.events.at(-1)?.seq ?? coveredSeq, page.throughSeq ?? 0);
    next = covered > coveredSeq && covered < target ? fetchPage(covered, false) : undefined;
    coveredSeq = Math.max(coveredSeq, covered);
    yield page;
  }
}
