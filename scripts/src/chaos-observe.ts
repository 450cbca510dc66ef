import { findDiscrepancies, type Expected, type LogEvent, type Observed } from './chaos-check.js';
import { busHeaders, getJson, send } from './harness.js';
import { delay } from '@blog/common/process';
import type { Replica, System } from './process/system-types.js';

interface SubscriberStatus {
  name: string;
  /** On NATS, `replica` is one process's own consumer: a killed one's stays a while, behind. */
  kind?: string;
  lag: number;
  failures: number;
}

const LOG_PAGE = 10_000;

/** The log's last seq, read from `after` on (`GET /events?after=`); undefined if the bus does not answer. */
async function logHead(system: System, after: number): Promise<number | undefined> {
  const bus = system.urls['event-bus'];
  for (let head = after; ;) {
    const page = await getJson<LogEvent[]>(
      `${bus}/events?after=${head}&limit=${LOG_PAGE}`,
      15_000,
      busHeaders(),
    )
      .then((events) => events.map((event) => event.seq))
      .catch(() => undefined);
    if (page === undefined) return undefined;
    if (page.length === 0) return head;
    head = page[page.length - 1]!;
  }
}

/**
 * Until every process answers `/readyz` 200, every subscriber the bus delivers to (or durable consumer)
 * has the whole log and nobody is retrying, and the log head has stayed the same for three polls in a row (a reaction still on its way
 * would move it). Resolves the time it took, or null after the timeout.
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
    ).catch(() => undefined);
    // A replica's own consumer is not waited for: observeSettled checks what each replica shows.
    const shared = subscribers?.filter((s) => s.kind !== 'replica');
    const caughtUp = shared?.every((s) => s.lag === 0 && s.failures === 0) ?? false;
    const services = system.status().filter(({ name }) => !name.startsWith('nats'));
    const ready = await Promise.all(services.map(({ url }) => send(`${url}/readyz`)));
    const head = caughtUp ? await logHead(system, stableHead ?? 0) : undefined;
    if (head === undefined || ready.some((answer) => answer.status !== 200)) {
      stablePolls = 0;
      continue;
    }
    stablePolls = head === stableHead ? stablePolls + 1 : 1;
    stableHead = head;
    if (stablePolls >= 3) return Date.now() - started;
  }
  return null;
}

/** comments' `GET /posts/:id/comments` of one replica, for every post id. */
async function commentsOf(replica: Replica, postIds: string[]): Promise<Observed['comments'][string]> {
  const comments: Observed['comments'][string] = {};
  for (let i = 0; i < postIds.length; i += 16) {
    await Promise.all(
      postIds.slice(i, i + 16).map(async (id) => {
        comments[id] = await getJson(`${replica.url}/posts/${encodeURIComponent(id)}/comments`);
      }),
    );
  }
  return comments;
}

/** Each replica's answer to `read`, by replica name. */
async function byReplica<T>(replicas: readonly Replica[], read: (replica: Replica) => Promise<T>) {
  return Object.fromEntries(await Promise.all(replicas.map(async (r) => [r.name, await read(r)] as const)));
}

/** What the system holds: the log, every replica's view (every post's comments), and the dead letters. */
export async function observe(system: System): Promise<Observed> {
  const bus = system.urls['event-bus'];
  const events = await getJson<LogEvent[]>(`${bus}/events`, 60_000, busHeaders());
  const postIds = [...new Set(events.filter((e) => e.type === 'PostCreated').map((e) => String(e.data.id)))];
  return {
    events,
    query: await byReplica(system.replicas.query, (r) => getJson(`${r.url}/posts`)),
    posts: await byReplica(system.replicas.posts, (r) => getJson(`${r.url}/posts`)),
    comments: await byReplica(system.replicas.comments, (r) => commentsOf(r, postIds)),
    deadLetters: await getJson(`${bus}/dead-letters`, undefined, busHeaders()),
  };
}

/**
 * Observes and checks until nothing is wrong or `timeoutMs` has passed: a replica may show a write a few
 * seconds after another (its consumer made again after a NATS node died), never a wrong one for ever.
 * The last observation, what is wrong with it, and how long it took to be right (null if it never was).
 */
export async function observeSettled(system: System, expected: Expected, timeoutMs: number) {
  const started = Date.now();
  for (;;) {
    const observed = await observe(system);
    const discrepancies = findDiscrepancies(expected, observed);
    const settledAfterMs = discrepancies.length === 0 ? Date.now() - started : null;
    if (settledAfterMs !== null || Date.now() - started >= timeoutMs) {
      return { observed, discrepancies, settledAfterMs };
    }
    await delay(1000);
  }
}
