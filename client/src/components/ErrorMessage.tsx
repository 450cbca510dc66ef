/** An error in words, announced to screen readers; nothing when there is none. */
export function ErrorMessage({ id, message }: { id?: string; message?: string | undefined }) {
  if (!message) return null;
  return (
    <div id={id} className="alert alert-danger" role="alert">
      {message}
    </div>
  );
}
