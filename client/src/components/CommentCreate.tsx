import { useId, useState } from 'react';
import { createComment } from '../api';
import { useSubmit } from '../useSubmit';
import { ErrorMessage } from './ErrorMessage';

/** The course's comment form under each post: label "New Comment", an input, "Submit". */
export function CommentCreate({ postId, onCreated }: { postId: string; onCreated?: () => void }) {
  const inputId = useId();
  const [content, setContent] = useState('');
  const { error, sending, onSubmit } = useSubmit(
    () => createComment(postId, content),
    () => {
      setContent('');
      onCreated?.();
    },
  );

  return (
    <div>
      <form onSubmit={onSubmit}>
        <div className="form-group">
          <label htmlFor={inputId}>New Comment</label>
          <input
            id={inputId}
            value={content}
            onChange={(event) => setContent(event.target.value)}
            className="form-control"
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? `${inputId}-error` : undefined}
          />
        </div>
        <ErrorMessage id={`${inputId}-error`} message={error} />
        <button className="btn btn-primary" disabled={sending}>
          Submit
        </button>
      </form>
    </div>
  );
}
