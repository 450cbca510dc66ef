import { HttpError, type Logger } from '@blog/common';
import type { EventRow } from './store.js';

/**
 * Validates and stores reactions in the log; throws an HttpError for a malformed one (nothing stored),
 * anything else if the log cannot take them now.
 */
export type StoreReactions = (events: unknown) => unknown;

/**
 * Stores the reactions that came back in a subscriber's answer (docs/event-bus.md, "Reactions in the
 * answer"). False if the log could not take them, so the delivery is retried. A malformed answer is the
 * subscriber's bug: logged and counted (`rejected`), and the delivery still counts, so one bad reaction
 * cannot stop the subscriber's stream; it keeps the reaction in its outbox, so nothing valid is lost.
 */
export function storeAnsweredReactions(
  body: string,
  rows: EventRow[],
  storeReactions: StoreReactions,
  log: Logger,
  rejected: () => void,
): boolean {
  try {
    const events = (JSON.parse(body) as { events?: unknown }).events;
    try {
      storeReactions(events);
    } catch (err) {
      // One malformed reaction refuses the array: store the others one by one, since the subscriber
      // forgets every reaction it answered once the cursor has passed their trigger (X-Events-Cursor).
      if (!(err instanceof HttpError) || !Array.isArray(events) || events.length < 2) throw err;
      const refused = events.filter((event) => !storedAlone(event, storeReactions));
      if (refused.length > 0) throw err;
    }
    return true;
  } catch (err) {
    if (!(err instanceof HttpError) && !(err instanceof SyntaxError)) {
      log.error({ err }, 'could not store the reactions in an answer');
      return false;
    }
    rejected();
    log.error(
      { fromSeq: rows[0]!.seq, toSeq: rows.at(-1)!.seq, error: describeRejection(err) },
      'malformed reactions in the answer of a subscriber, not stored',
    );
    return true;
  }
}

/** Stores one reaction; false if it is malformed. */
function storedAlone(event: unknown, storeReactions: StoreReactions): boolean {
  try {
    storeReactions([event]);
    return true;
  } catch (err) {
    if (err instanceof HttpError) return false;
    throw err;
  }
}

function describeRejection(err: HttpError | SyntaxError): string {
  if (err instanceof SyntaxError) return `not JSON: ${err.message}`;
  return err.errors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message)).join('; ');
}
