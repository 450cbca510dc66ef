/** The query service's view (`GET /posts`) and how an event from `GET /posts/live` changes it. */

export type CommentStatus = 'pending' | 'approved' | 'rejected';

export interface Comment {
  id: string;
  content: string;
  status: CommentStatus;
}

export interface Post {
  id: string;
  title: string;
  comments: Comment[];
}

export type Posts = Record<string, Post>;

/** One event as the live stream sends it. */
export interface LiveEvent {
  type: string;
  seq?: number;
  id?: string;
  time: string;
  data: Record<string, unknown>;
}

const text = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const isStatus = (value: unknown): value is CommentStatus =>
  value === 'pending' || value === 'approved' || value === 'rejected';

/**
 * The query service's projection, on the client: returns a new `posts` (React compares by reference) or
 * the same one when the event changes nothing. Applying an event twice changes nothing the second time.
 */
export function applyEvent(posts: Posts, event: LiveEvent): Posts {
  const { data } = event;
  const id = text(data.id);
  if (!id) return posts;
  switch (event.type) {
    case 'PostCreated': {
      const title = text(data.title);
      if (title === undefined || Object.hasOwn(posts, id)) return posts;
      return { ...posts, [id]: { id, title, comments: [] } };
    }
    case 'CommentCreated': {
      const postId = text(data.postId);
      const content = text(data.content);
      const post = postId !== undefined && Object.hasOwn(posts, postId) ? posts[postId] : undefined;
      if (!post || content === undefined || post.comments.some((comment) => comment.id === id)) return posts;
      const status = isStatus(data.status) ? data.status : 'pending';
      return { ...posts, [post.id]: { ...post, comments: [...post.comments, { id, content, status }] } };
    }
    case 'CommentUpdated': {
      const postId = text(data.postId);
      const post = postId !== undefined && Object.hasOwn(posts, postId) ? posts[postId] : undefined;
      if (!post || !isStatus(data.status)) return posts;
      const status = data.status;
      const comments = post.comments.map((comment) =>
        comment.id === id ? { ...comment, status, content: text(data.content) ?? comment.content } : comment,
      );
      return { ...posts, [post.id]: { ...post, comments } };
    }
    default:
      return posts;
  }
}
