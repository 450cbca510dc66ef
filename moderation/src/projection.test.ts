import { describe, expect, it } from 'vitest';
import { moderate, moderationProjection } from './projection.js';

const created = (content: string) =>
  ({ type: 'CommentCreated', data: { id: 'c1', content, postId: 'p1', status: 'pending' } }) as const;

describe('moderation', () => {
  it('rejects a comment containing "orange", case-sensitively, and approves the rest', () => {
    expect(moderate('I like orange juice')).toBe('rejected');
    expect(moderate('oranges')).toBe('rejected');
    expect(moderate('Orange')).toBe('approved');
    expect(moderate('apple')).toBe('approved');
  });

  it('reacts to CommentCreated with a CommentModerated carrying the course fields', () => {
    expect(moderationProjection.react!(null, created('an orange'))).toEqual([
      {
        type: 'CommentModerated',
        data: { id: 'c1', postId: 'p1', status: 'rejected', content: 'an orange' },
      },
    ]);
  });

  it('does not react to other events', () => {
    expect(
      moderationProjection.react!(null, { type: 'PostCreated', data: { id: 'p1', title: 't' } }),
    ).toEqual([]);
    expect(
      moderationProjection.react!(null, {
        type: 'CommentUpdated',
        data: { id: 'c1', postId: 'p1', status: 'approved', content: 'x' },
      }),
    ).toEqual([]);
  });
});
