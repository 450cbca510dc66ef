import type { CommentStatus, Projection } from '@blog/common';

export interface QueryComment {
  id: string;
  content: string;
  status: CommentStatus;
}

export interface QueryPost {
  id: string;
  title: string;
  comments: QueryComment[];
}

export interface QueryState {
  /** The course's shape, served by `GET /posts`: `{[postId]: {id, title, comments}}`. */
  posts: Record<string, QueryPost>;
  /** Every comment by id, so a CommentUpdated finds its comment without scanning the post. */
  commentsById: Map<string, QueryComment>;
  /** Grows on every change; `GET /posts` reuses its serialized answer while it stays the same. */
  version: number;
}

export const queryProjection: Projection<QueryState> = {
  types: ['PostCreated', 'CommentCreated', 'CommentUpdated'],
  initial: () => ({
    posts: Object.create(null) as Record<string, QueryPost>,
    commentsById: new Map(),
    version: 0,
  }),

  apply(state, event) {
    switch (event.type) {
      case 'PostCreated': {
        const { id, title } = event.data;
        if (state.posts[id]) return 'already-exists';
        state.posts[id] = { id, title, comments: [] };
        break;
      }
      case 'CommentCreated': {
        const { id, content, postId, status } = event.data;
        const post = state.posts[postId];
        if (!post) return 'unknown-target';
        if (state.commentsById.has(id)) return 'already-exists';
        const comment: QueryComment = { id, content, status };
        state.commentsById.set(id, comment);
        post.comments.push(comment);
        break;
      }
      case 'CommentUpdated': {
        const comment = state.commentsById.get(event.data.id);
        if (!comment) return 'unknown-target';
        comment.status = event.data.status;
        comment.content = event.data.content;
        break;
      }
      default:
        return;
    }
    state.version++;
  },
};
