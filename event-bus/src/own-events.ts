import type { IncomingMessage } from 'node:http';
import { HttpError } from '@blog/common';
import type { AppendResult } from './store.js';

// A publish by one of the bus's own subscribers (docs/event-bus.md, "A publisher's own events").

/** `X-Events-Publisher` and `X-Events-Applied`: which subscriber publishes, and what it has applied. */
export interface Publisher {
  name: string;
  appliedSeq: number;
}

/** The answer's header: every seq after the publisher's `X-Events-Applied` up to it is of a type it skips. */
export const PASSED_THROUGH_HEADER = 'X-Events-Passed-Through';

/** The publisher a request names, if any; 400 for a header without the other, or a malformed one. */
export function publisherOf(req: IncomingMessage): Publisher | undefined {
  const name = req.headers['x-events-publisher'];
  const applied = req.headers['x-events-applied'];
  if (name === undefined && applied === undefined) return undefined;
  if (typeof name !== 'string' || !/^[\w.-]{1,100}$/.test(name)) {
    throw HttpError.badRequest(
      'X-Events-Publisher must name a subscriber (1 to 100 letters, digits, -, _ or .), with X-Events-Applied',
      'x-events-publisher',
    );
  }
  if (typeof applied !== 'string' || !/^\d{1,15}$/.test(applied)) {
    throw HttpError.badRequest(
      'X-Events-Applied must be the seq the publisher has applied, a whole number',
      'x-events-applied',
    );
  }
  return { name, appliedSeq: Number(applied) };
}

/** The seqs the publish stored now (its duplicates left out): one run, first to last, or undefined. */
export function newSeqs(results: readonly AppendResult[]): { first: number; last: number } | undefined {
  const stored = results.filter((result) => !result.duplicate);
  if (stored.length === 0) return undefined;
  const first = stored[0]!.seq;
  const last = stored.at(-1)!.seq;
  return last - first + 1 === stored.length ? { first, last } : undefined;
}
