import { delay } from './delay.js';
import { StartError } from './errors.js';

const POLL_MS = 150;

export interface PollOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Tries `attempt` (given how long it may take) every POLL_MS until it resolves. Rejects after `timeoutMs`
 * with `${failure} within N s (last: <the last attempt's error>)`, or as soon as `signal` aborts.
 */
export async function pollUntil(
  failure: string,
  attempt: (attemptTimeoutMs: number) => Promise<void>,
  options: PollOptions,
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      return await attempt(Math.max(100, Math.min(2000, deadline - Date.now())));
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() >= deadline) {
      throw new StartError(`${failure} within ${timeoutMs / 1000} s (last: ${last})`);
    }
    await delay(POLL_MS, options.signal);
  }
}

/** One attempt: `GET url` answers 200, else an error naming the status and the start of the body. */
export async function answers200(url: string, timeoutMs: number): Promise<void> {
  let response: Response;
  let body: string;
  try {
    response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    body = await response.text();
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new Error(cause?.code ?? cause?.message ?? (err as Error).message);
  }
  if (response.status !== 200) throw new Error(`${response.status} ${body.slice(0, 200)}`);
}

/** Polls `GET url` until it answers 200. Rejects after `timeoutMs`, or as soon as `signal` aborts. */
export function waitForHttpOk(url: string, options: PollOptions = {}): Promise<void> {
  return pollUntil(`${url} did not answer 200`, (ms) => answers200(url, ms), options);
}

/**
 * Polls `GET <url>/readyz` until it answers 200. Rejects after `timeoutMs` with the last answer or error,
 * or as soon as `signal` aborts.
 */
export function waitForReady(url: string, options: PollOptions = {}): Promise<void> {
  return waitForHttpOk(`${url}/readyz`, options);
}
