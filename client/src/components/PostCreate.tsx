import { useState } from 'react';
import { createPost } from '../api';
import { useSubmit } from '../useSubmit';
import { ErrorMessage } from './ErrorMessage';

/** The course's form: label "Title", an input, "Submit"; the field is cleared once the post is created. */
export function PostCreate({ onCreated }: { onCreated?: () => void }) {
  const [title, setTitle] = useState('');
  // No check here on purpose: the posts service says what is wrong (an empty title, too long...).
  const { error, sending, onSubmit } = useSubmit(
    () => createPost(title),
    () => {
      setTitle('');
      onCreated?.();
    },
  );

  return (
    <div>
      <form onSubmit={onSubmit}>
        <div className="form-group">
          <label htmlFor="post-title">Title</label>
          <input
            id="post-title"
            value={title}
            onChange={(event) => setTitle(event.target.value)}
            className="form-control"
            aria-invalid={error ? true : undefined}
            aria-describedby={error ? 'post-title-error' : undefined}
          />
        </div>
        <ErrorMessage id="post-title-error" message={error} />
        <button className="btn btn-primary" disabled={sending}>
          Submit
        </button>
      </form>
    </div>
  );
}
