import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import type { BlogEvent, KnownEventType, Projection } from '../common/src/index.js';
import { commentsProjection } from '../comments/src/projection.js';
import { moderationProjection } from '../moderation/src/projection.js';
import { postsProjection } from '../posts/src/projection.js';
import { queryProjection } from '../query/src/projection.js';

// Each projection lists the event types it acts on (`types`); the bus never sends it the others, counting
// them as applied, or holds them back a moment for a service whose every applied event is pushed out (docs/
// event-bus.md, "Deliveries of the types a subscriber acts on"). A type missing from the list would never
// be applied; one listed for nothing costs a delivery per event. So: the list is exactly what acts.

/** One comment's life after its post, with every event of the course. */
const story: BlogEvent[] = [
  { type: 'PostCreated', data: { id: 'p1', title: 'First' } },
  { type: 'CommentCreated', data: { id: 'c1', content: 'an orange', postId: 'p1', status: 'pending' } },
  {
    type: 'CommentModerated',
    data: { id: 'c1', content: 'an orange', postId: 'p1', status: 'rejected' },
  },
  { type: 'CommentUpdated', data: { id: 'c1', content: 'an orange', postId: 'p1', status: 'rejected' } },
];

const projections: Array<[string, Projection<unknown>]> = [
  ['posts', postsProjection as Projection<unknown>],
  ['comments', commentsProjection as Projection<unknown>],
  ['moderation', moderationProjection as Projection<unknown>],
  ['query', queryProjection as Projection<unknown>],
];

/** Which events of the story change the state or cause a reaction, applying the story in order. */
function typesThatAct(projection: Projection<unknown>): KnownEventType[] {
  const state = projection.initial();
  const acting = new Set<KnownEventType>();
  for (const event of story) {
    const before = structuredClone(state);
    projection.apply(state, event);
    const reactions = projection.react?.(state, event) ?? [];
    // Both cloned, so a null-prototype state compares by its contents.
    if (!isDeepStrictEqual(before, structuredClone(state)) || reactions.length > 0) acting.add(event.type);
  }
  return [...acting];
}

describe('projection types', () => {
  it.each(projections)('%s lists exactly the types it acts on', (_name, projection) => {
    expect(projection.types).toBeDefined();
    expect([...projection.types!].sort()).toEqual(typesThatAct(projection).sort());
  });
});
