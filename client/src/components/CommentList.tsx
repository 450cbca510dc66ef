import type { Comment } from '../posts';

/** The course's texts, to the letter. */
export function commentText(comment: Comment): string {
  switch (comment.status) {
    case 'approved':
      return comment.content;
    case 'pending':
      return 'This comment is awaiting moderation';
    case 'rejected':
      return 'This comment has been rejected';
  }
}

export function CommentList({ comments }: { comments: Comment[] }) {
  return (
    <ul>
      {comments.map((comment) => (
        <li key={comment.id} data-status={comment.status}>
          {commentText(comment)}
        </li>
      ))}
    </ul>
  );
}
