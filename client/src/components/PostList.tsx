import type { Posts } from '../posts';
import { CommentCreate } from './CommentCreate';
import { CommentList } from './CommentList';
import { ErrorMessage } from './ErrorMessage';

/** One Bootstrap card per post (title, comments, comment form), in a wrapping row as in the course. */
export function PostList({
  posts,
  loadError,
  onChanged,
}: {
  posts: Posts;
  loadError?: string;
  onChanged?: () => void;
}) {
  return (
    <>
      <ErrorMessage message={loadError && `Could not load the posts: ${loadError}`} />
      <div className="d-flex flex-row flex-wrap justify-content-between" data-testid="post-list">
        {Object.values(posts).map((post) => (
          <div
            className="card"
            style={{ width: '30%', marginBottom: '20px' }}
            key={post.id}
            data-testid="post-card"
          >
            <div className="card-body">
              <h3>{post.title}</h3>
              <CommentList comments={post.comments} />
              <CommentCreate postId={post.id} onCreated={onChanged} />
            </div>
          </div>
        ))}
      </div>
    </>
  );
}
