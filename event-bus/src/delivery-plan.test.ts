import { describe, expect, it } from 'vitest';
import { actsOnAny, planDelivery, type TypesWanted } from './delivery-plan.js';
import type { EventRow } from './store.js';

const row = (seq: number, type: string): EventRow => ({ seq, id: `e${seq}`, type, body: '{}', time: null });
const skipping: TypesWanted = { types: new Set(['CommentCreated']), skipOthers: true };

describe('which loops a publish wakes at once', () => {
  it('a subscriber that skips other types, only for one of its own', () => {
    expect(actsOnAny(skipping, new Set(['CommentCreated']))).toBe(true);
    expect(actsOnAny(skipping, new Set(['PostCreated', 'CommentCreated']))).toBe(true);
    expect(actsOnAny(skipping, new Set(['CommentUpdated']))).toBe(false);
  });

  it('a subscriber that is sent every type (or said nothing of them), always', () => {
    expect(actsOnAny({ types: undefined, skipOthers: false }, new Set(['Anything']))).toBe(true);
    expect(actsOnAny({ types: new Set(['A']), skipOthers: false }, new Set(['B']))).toBe(true);
  });
});

describe('planDelivery', () => {
  it('passes over the types a subscriber skips, through the last seq read', () => {
    const read = [row(4, 'PostCreated'), row(5, 'CommentCreated'), row(6, 'CommentUpdated')];
    expect(planDelivery(read, true, skipping)).toEqual({ rows: [read[1]], batch: true, through: 6 });
    expect(planDelivery([read[0]!, read[2]!], true, skipping)).toEqual({ rows: [], batch: true, through: 6 });
    expect(planDelivery(read, false, skipping)).toEqual({ rows: [read[1]], batch: false, through: 5 });
  });
});
