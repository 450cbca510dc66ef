import { useId, useState, type FormEvent } from 'react';
import { createComment } from '../api';
import { ErrorMessage } from './ErrorMessage';

/** The course's comment form under each post: label "New Comment", an input, "Submit". */
export function CommentCreate({ postId, onCreated }: { postId: string; onCreated?: () => void }) {
  const inputId = useId();
  const [content, setContent] = useState('');
  const [error, setError] = useState<string>();
  const [sending, setSending] = useState(false);

  const onSubmit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    setSending(true);
    try {
      await createComment(postId, content);
      setContent('');
      setError(undefined);
      onCreated?.();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setSending(false);
    }
  };

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
