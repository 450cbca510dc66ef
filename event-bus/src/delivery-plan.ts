import { BODY_MAX_BYTES } from '@blog/common';
import { eventJson, type EventRow } from './store.js';

/**
 * The largest batch, in events and in bytes of its JSON. An event larger than BATCH_MAX_BYTES goes alone; no
 * body is ever larger than a subscriber takes (BODY_MAX_BYTES, common/src/limits.ts): the bus stores no event
 * that would not fit in it alone, within `[...]`.
 */
export const BATCH_MAX_EVENTS = 200;
export const BATCH_MAX_BYTES = Math.min(64 * 1024, BODY_MAX_BYTES);

/**
 * What a loop does next with the events after its cursor: POST `rows` (one event as an object, or a batch
 * as an array), or, with no rows, only move the cursor to `through` (every event up to there is of a type
 * the subscriber skips). `through`, when set, is sent as `X-Events-Through`: every seq after the cursor the
 * subscriber knows up to there that is not in the body is one it does not act on.
 */
export interface Delivery {
  rows: EventRow[];
  batch: boolean;
  through?: number;
}

/** What a subscriber said of the types it acts on, in its last answer (docs/event-bus.md). */
export interface TypesWanted {
  /** `X-Events-Types`; undefined: all of them (a course-original subscriber). */
  types: Set<string> | undefined;
  /** `X-Events-Others: skip`: the other types are never sent to it, only passed over. */
  skipOthers: boolean;
}

/** Whether a subscriber may be sent an event of one of `stored`: false when it only passes over them all. */
export function actsOnAny({ types, skipOthers }: TypesWanted, stored: ReadonlySet<string>): boolean {
  if (!types || !skipOthers) return true;
  for (const type of stored) if (types.has(type)) return true;
  return false;
}

/**
 * The delivery to make of `read`, the events after the cursor in seq order: all of them, or, for a
 * subscriber that skips the types it does not act on, only those it acts on, and `through` the last seq
 * read (or, for a single event, that event's seq: what comes after it goes with the next delivery).
 */
export function planDelivery(read: EventRow[], batch: boolean, wanted: TypesWanted): Delivery {
  const { types, skipOthers } = wanted;
  if (!types || !skipOthers) return { rows: batch ? read : read.slice(0, 1), batch };
  const rows = read.filter((row) => types.has(row.type));
  if (rows.length === 0) return { rows, batch, through: read.at(-1)!.seq };
  if (!batch) return { rows: rows.slice(0, 1), batch, through: rows[0]!.seq };
  return { rows, batch, through: read.at(-1)!.seq };
}

/**
 * The POST body: one event as an object, or as many as fit BATCH_MAX_BYTES (of UTF-8) as an array, with
 * the rows it carries and how far it covers the log (`through`, down to its last row if it had to leave
 * some out).
 */
export function deliveryBody({ rows, batch, through }: Delivery): {
  rows: EventRow[];
  body: string;
  through?: number;
} {
  if (!batch) return { rows: rows.slice(0, 1), body: eventJson(rows[0]!), through };
  const items: string[] = [];
  let bytes = 1; // `[`, then each event with the `,` or `]` after it
  for (const row of rows) {
    const json = eventJson(row);
    const size = Buffer.byteLength(json) + 1;
    if (items.length > 0 && bytes + size > BATCH_MAX_BYTES) break;
    items.push(json);
    bytes += size;
  }
  const sent = rows.slice(0, items.length);
  const covered = through === undefined || sent.length === rows.length ? through : sent.at(-1)!.seq;
  return { rows: sent, body: `[${items.join(',')}]`, through: covered };
}

/** `X-Events-Types: A,B`: the types a subscriber acts on; absent or empty means all of them. */
export function parseTypesWanted(
  typesHeader: string | string[] | undefined,
  othersHeader: string | string[] | undefined,
): TypesWanted {
  const listed = String(typesHeader ?? '')
    .split(',')
    .map((type) => type.trim())
    .filter(Boolean);
  const types = listed.length > 0 ? new Set(listed) : undefined;
  return { types, skipOthers: types !== undefined && String(othersHeader).toLowerCase() === 'skip' };
}
