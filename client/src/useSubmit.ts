import { useState, type FormEvent } from 'react';

/**
 * What the course's two forms share: send on submit, stop a second send while one is on its way, and keep
 * the error the service answered (in words) until the next success. `send` returns once the change is made.
 */
export function useSubmit(send: () => Promise<unknown>, onSent: () => void) {
  const [error, setError] = useState<string>();
  const [sending, setSending] = useState(false);

  const onSubmit = async (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    setSending(true);
    try {
      await send();
      setError(undefined);
      onSent();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setSending(false);
    }
  };

  return { error, sending, onSubmit };
}
