import { useState, type FormEvent } from 'react';

/**
 * What the course's two forms share: send on submit, stop a second send while one is on its way, and keep
 * the error the service answered (in words) until the next success. `send` returns once the change is made.
 */
export function useSubmit(send: () => Promise<unknown>, onSent: () => void) {
  const [error, setError] = useState<string>();
  const [sending, setSending] = useState(false);

  const sendAndKeepTheError = async () => {
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

  // A form handler's promise is dropped by React; sending catches every error itself, so none is lost.
  const onSubmit = (event: FormEvent<HTMLFormElement>) => {
    event.preventDefault();
    void sendAndKeepTheError();
  };

  return { error, sending, onSubmit };
}
