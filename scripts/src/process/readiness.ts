import net from 'node:net';
import { delay } from './delay.js';
import { StartError } from './errors.js';
import { DEFAULT_NATS_PORT } from './names.js';

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

/** One attempt: connects and resolves once the server sends its `INFO` line, as NATS greets a client. */
export function natsGreets(natsUrl: string, timeoutMs: number): Promise<void> {
  const url = new URL(natsUrl);
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port || DEFAULT_NATS_PORT) });
    let received = '';
    const done = (err?: Error) => {
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => done(new Error('no INFO line')));
    socket.on('error', (err: NodeJS.ErrnoException) => done(new Error(err.code ?? err.message)));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.startsWith('INFO ')) done();
      else if (received.length >= 5) done(new Error(`not a NATS server: ${received.slice(0, 60)}`));
    });
  });
}

/**
 * Polls `nats://host:port` until a connection is greeted with `INFO` (the nats-server accepts clients only
 * once JetStream has recovered its store). Rejects after `timeoutMs`, or as soon as `signal` aborts.
 */
export function waitForNats(natsUrl: string, options: PollOptions = {}): Promise<void> {
  return pollUntil(`${natsUrl} did not greet a client`, (ms) => natsGreets(natsUrl, ms), options);
}
