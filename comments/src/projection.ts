import type { CommentStatus, Projection } from '@blog/common';

export interface Comment {
  id: string;
  content: string;
  status: CommentStatus;
}

export interface CommentsState {
  /** Posts that exist, so a comment on an unknown post can be refused. */
  postIds: Set<string>;
  /** The course's `commentsByPostId`, served by `GET /posts/:id/comments`. */
  commentsByPostId: Map<string, Comment[]>;
  /** Every comment by id, so a moderation finds its comment without scanning a post. */
  commentsById: Map<string, Comment>;
  /**
   * How many times a comment's status changed once already final (moderated a second time): what is kept
   * of the comments' JSON as final (`CommentListJson`) is made again when it moves.
   */
  finalStatusChanges: number;
}

export const commentsProjection: Projection<CommentsState> = {
  types: ['PostCreated', 'CommentCreated', 'CommentModerated'],
  initial: () => ({
    postIds: new Set(),
    commentsByPostId: new Map(),
    commentsById: new Map(),
    finalStatusChanges: 0,
  }),

  apply(state, event) {
    switch (event.type) {
      case 'PostCreated': {
        if (state.postIds.has(event.data.id)) return 'already-exists';
        state.postIds.add(event.data.id);
        return;
      }
      case 'CommentCreated': {
        const { id, content, postId, status } = event.data;
        if (!state.postIds.has(postId)) return 'unknown-target';
        if (state.commentsById.has(id)) return 'already-exists';
        const comment: Comment = { id, content, status };
        state.commentsById.set(id, comment);
        const comments = state.commentsByPostId.get(postId);
        if (comments) comments.push(comment);
        else state.commentsByPostId.set(postId, [comment]);
        return;
      }
      case 'CommentModerated': {
        // The course's service crashes here on an unknown comment; this one acknowledges and logs it.
        const comment = state.commentsById.get(event.data.id);
        if (!comment) return 'unknown-target';
        if (comment.status !== 'pending' && comment.status !== event.data.status) state.finalStatusChanges++;
        comment.status = event.data.status;
        return;
      }
      default:
        return;
    }
  },

  react(state, event) {
    if (event.type !== 'CommentModerated') return [];
    const comment = state.commentsById.get(event.data.id);
    if (!comment) return [];
    const { id, status, content } = comment;
    return [{ type: 'CommentUpdated', data: { id, status, postId: event.data.postId, content } }];
  },
};
