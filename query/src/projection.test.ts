import type { BlogEvent } from '@blog/common';
import { describe, expect, it } from 'vitest';
import { queryProjection } from './projection.js';

const events: BlogEvent[] = [
  { type: 'PostCreated', data: { id: 'p1', title: 'Post one' } },
  { type: 'CommentCreated', data: { id: 'c1', content: 'hello', postId: 'p1', status: 'pending' } },
  { type: 'CommentCreated', data: { id: 'c2', content: 'orange', postId: 'p1', status: 'pending' } },
  { type: 'CommentUpdated', data: { id: 'c1', status: 'approved', postId: 'p1', content: 'hello' } },
  { type: 'CommentUpdated', data: { id: 'c2', status: 'rejected', postId: 'p1', content: 'orange' } },
];

describe('query projection', () => {
  it('joins posts and comments in the course shape', () => {
    const state = queryProjection.initial();
    for (const event of events) queryProjection.apply(state, event);
    expect(JSON.parse(JSON.stringify(state.posts))).toEqual({
      p1: {
        id: 'p1',
        title: 'Post one',
        comments: [
          { id: 'c1', content: 'hello', status: 'approved' },
          { id: 'c2', content: 'orange', status: 'rejected' },
        ],
      },
    });
  });

  it('changes version on every change and only then', () => {
    const state = queryProjection.initial();
    for (const event of events) queryProjection.apply(state, event);
    expect(state.version).toBe(events.length);
    queryProjection.apply(state, {
      type: 'CommentCreated',
      data: { id: 'c9', content: 'x', postId: 'nope', status: 'pending' },
    });
    queryProjection.apply(state, { type: 'PostCreated', data: { id: 'p1', title: 'again' } });
    expect(state.version).toBe(events.length);
  });

  it('sets content too on CommentUpdated, as the course does', () => {
    const state = queryProjection.initial();
    queryProjection.apply(state, events[0]!);
    queryProjection.apply(state, events[1]!);
    queryProjection.apply(state, {
      type: 'CommentUpdated',
      data: { id: 'c1', status: 'approved', postId: 'p1', content: 'edited' },
    });
    expect(state.posts.p1?.comments[0]).toEqual({ id: 'c1', content: 'edited', status: 'approved' });
  });

  it('keeps the comments of a post when its PostCreated comes twice', () => {
    const state = queryProjection.initial();
    for (const event of events) queryProjection.apply(state, event);
    expect(queryProjection.apply(state, events[0]!)).toBe('already-exists');
    expect(state.posts.p1?.comments).toHaveLength(2);
  });

  it('ignores updates for unknown comments', () => {
    const state = queryProjection.initial();
    expect(queryProjection.apply(state, events[3]!)).toBe('unknown-target');
  });
});
