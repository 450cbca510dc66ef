import type { LogEvent, Observed } from './chaos-check.js';
import { busHeaders, getJson, send } from './harness.js';
import { delay } from '@blog/common/process';
import { SERVICE_NAMES } from './process/names.js';
import type { System } from './process/system-types.js';

interface SubscriberStatus {
  name: string;
  cursor: number;
  lag: number;
  failures: number;
}

/**
 * Until every subscriber has the whole log, nobody is retrying, every service is ready, and the log head has
 * stayed the same for three polls in a row (a reaction still on its way would move it). Resolves the time
 * it took, or null after the timeout.
 */
export async function waitForQuiet(system: System, timeoutMs: number): Promise<number | null> {
  const started = Date.now();
  let stableHead: number | undefined;
  let stablePolls = 0;
  while (Date.now() - started < timeoutMs) {
    await delay(200);
    const subscribers = await getJson<SubscriberStatus[]>(
      `${system.urls['event-bus']}/subscribers`,
      undefined,
      busHeaders(),
    ).catch(() => []);
    const caughtUp = subscribers.length > 0 && subscribers.every((s) => s.lag === 0 && s.failures === 0);
    const ready = await Promise.all(SERVICE_NAMES.map((name) => send(`${system.urls[name]}/readyz`)));
    if (!caughtUp || ready.some((answer) => answer.status !== 200)) {
      stablePolls = 0;
      continue;
    }
    const head = subscribers[0]!.cursor;
    stablePolls = head === stableHead ? stablePolls + 1 : 1;
    stableHead = head;
    if (stablePolls >= 3) return Date.now() - started;
  }
  return null;
}

/** What the system holds: the log, both views, every post's comments, and the dead letters. */
export async function observe(system: System): Promise<Observed> {
  const bus = system.urls['event-bus'];
  const events = await getJson<LogEvent[]>(`${bus}/events`, 60_000, busHeaders());
  const postIds = [...new Set(events.filter((e) => e.type === 'PostCreated').map((e) => String(e.data.id)))];
  const comments: Observed['comments'] = {};
  for (let i = 0; i < postIds.length; i += 16) {
    await Promise.all(
      postIds.slice(i, i + 16).map(async (id) => {
        comments[id] = await getJson(`${system.urls.comments}/posts/${encodeURIComponent(id)}/comments`);
      }),
    );
  }
  return {
    events,
    query: await getJson(`${system.urls.query}/posts`),
    posts: await getJson(`${system.urls.posts}/posts`),
    comments,
    deadLetters: await getJson(`${bus}/dead-letters`, undefined, busHeaders()),
  };
}
