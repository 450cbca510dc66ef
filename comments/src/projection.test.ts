import type { BlogEvent } from '@blog/common';
import { describe, expect, it } from 'vitest';
import { commentsProjection, type CommentsState } from './projection.js';

function replay(events: BlogEvent[]): CommentsState {
  const state = commentsProjection.initial();
  for (const event of events) commentsProjection.apply(state, event);
  return state;
}

const postCreated: BlogEvent = { type: 'PostCreated', data: { id: 'p1', title: 'Post' } };
const commentCreated: BlogEvent = {
  type: 'CommentCreated',
  data: { id: 'c1', content: 'hello', postId: 'p1', status: 'pending' },
};
const moderated = (status: 'approved' | 'rejected'): BlogEvent => ({
  type: 'CommentModerated',
  data: { id: 'c1', postId: 'p1', status, content: 'hello' },
});

describe('comments projection', () => {
  it('lists a new comment as pending under its post', () => {
    const state = replay([postCreated, commentCreated]);
    expect(state.commentsByPostId.get('p1')).toEqual([{ id: 'c1', content: 'hello', status: 'pending' }]);
  });

  it('sets the status on CommentModerated and reacts with a CommentUpdated', () => {
    const state = replay([postCreated, commentCreated]);
    commentsProjection.apply(state, moderated('rejected'));
    expect(state.commentsByPostId.get('p1')?.[0]?.status).toBe('rejected');
    expect(commentsProjection.react!(state, moderated('rejected'))).toEqual([
      { type: 'CommentUpdated', data: { id: 'c1', status: 'rejected', postId: 'p1', content: 'hello' } },
    ]);
  });

  it('acknowledges a moderation of an unknown comment without crashing or reacting', () => {
    const state = replay([postCreated]);
    expect(commentsProjection.apply(state, moderated('approved'))).toBe('unknown-target');
    expect(commentsProjection.react!(state, moderated('approved'))).toEqual([]);
  });

  it('refuses a comment on an unknown post and a comment id seen before', () => {
    const state = replay([]);
    expect(commentsProjection.apply(state, commentCreated)).toBe('unknown-target');
    commentsProjection.apply(state, postCreated);
    commentsProjection.apply(state, commentCreated);
    expect(commentsProjection.apply(state, commentCreated)).toBe('already-exists');
    expect(state.commentsByPostId.get('p1')).toHaveLength(1);
  });

  it('ignores its own CommentUpdated', () => {
    const state = replay([postCreated, commentCreated, moderated('approved')]);
    commentsProjection.apply(state, {
      type: 'CommentUpdated',
      data: { id: 'c1', status: 'rejected', postId: 'p1', content: 'changed' },
    });
    expect(state.commentsById.get('c1')).toEqual({ id: 'c1', content: 'hello', status: 'approved' });
  });
});
