import { describe, expect, it } from 'vitest';
import { postsProjection } from './projection.js';

describe('posts projection', () => {
  it('adds a post on PostCreated, in the course shape', () => {
    const posts = postsProjection.initial();
    postsProjection.apply(posts, { type: 'PostCreated', data: { id: 'a1', title: 'First' } });
    expect(JSON.parse(JSON.stringify(posts))).toEqual({ a1: { id: 'a1', title: 'First' } });
  });

  it('keeps the first post when the same id comes again', () => {
    const posts = postsProjection.initial();
    postsProjection.apply(posts, { type: 'PostCreated', data: { id: 'a1', title: 'First' } });
    const outcome = postsProjection.apply(posts, { type: 'PostCreated', data: { id: 'a1', title: 'Other' } });
    expect(outcome).toBe('already-exists');
    expect(posts.a1?.title).toBe('First');
  });

  it('ignores the other event types', () => {
    const posts = postsProjection.initial();
    postsProjection.apply(posts, {
      type: 'CommentCreated',
      data: { id: 'c1', content: 'x', postId: 'a1', status: 'pending' },
    });
    expect(Object.keys(posts)).toEqual([]);
  });

  it('treats "__proto__" as an ordinary id', () => {
    const posts = postsProjection.initial();
    postsProjection.apply(posts, { type: 'PostCreated', data: { id: '__proto__', title: 'sneaky' } });
    expect(Object.keys(posts)).toEqual(['__proto__']);
    expect(({} as Record<string, unknown>).title).toBeUndefined();
  });
});
