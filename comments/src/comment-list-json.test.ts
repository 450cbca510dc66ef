import { describe, expect, it } from 'vitest';
import { CommentListJson, listJson } from './comment-list-json.js';
import { commentsProjection } from './projection.js';

describe('CommentListJson', () => {
  it('answers the JSON of a post as the projection leaves it, through comments, moderations and second moderations', () => {
    const state = commentsProjection.initial();
    const list = new CommentListJson();
    const apply = (type: 'CommentCreated' | 'CommentModerated', n: number, status = 'pending') => {
      const data = { id: `c${n}`, content: `comment "${n}" ✓`, postId: 'p1', status };
      commentsProjection.apply(state, { type, data } as Parameters<typeof commentsProjection.apply>[1]);
      const comments = state.commentsByPostId.get('p1') ?? [];
      const json = list.of(comments, state.finalStatusChanges);
      expect(json).toBe(listJson(comments));
      expect(JSON.parse(json)).toEqual(comments);
    };
    commentsProjection.apply(state, { type: 'PostCreated', data: { id: 'p1', title: 'Post' } });
    for (let n = 0; n < 40; n++) {
      apply('CommentCreated', n);
      // Moderated out of order, a few behind the newest, one left pending for a while.
      if (n >= 3 && n !== 20) apply('CommentModerated', n - 3, n % 3 === 0 ? 'rejected' : 'approved');
    }
    apply('CommentModerated', 17, 'approved');
    apply('CommentModerated', 3, 'approved');
    apply('CommentModerated', 3, 'rejected');
    apply('CommentModerated', 30, 'rejected');
    expect(state.finalStatusChanges).toBe(2);
  });
});
