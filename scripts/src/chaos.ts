/**
 * `npm run chaos`: the five services as real processes, a seeded random mix of writes, and meanwhile
 * SIGKILLs at random (the bus included), each service restarted after a random pause. At the end, once the
 * bus has delivered everything, every write that got its 201 must be there exactly once with its final
 * status, and the log must hold no event twice (scripts/src/chaos-check.ts). docs/reliability.md.
 * With `--transport nats` the services run on NATS JetStream, and the nats-server is killed too.
 *
 *   node scripts/dist/chaos.js [--seed N] [--duration S] [--min-kills N] [--rate N] [--transport T] [--json]
 *
 * The seed fixes every random choice (what to write, what to kill, how long to wait); the timing of a real
 * run on a shared machine still differs, so a replay makes the same choices, not the same interleaving.
 */
import {
  findDiscrepancies,
  type AckedComment,
  type AckedPost,
  type LogEvent,
  type Observed,
} from './chaos-check.js';
import {
  closeAgent,
  busHeaders,
  eventBusToken,
  getJson,
  parseScriptArgs,
  round,
  runScript,
  say,
  seededRandom,
  send,
  sleep,
  type Random,
} from './harness.js';
import { SERVICE_NAMES, transportOptions, type ProcessName } from './process/names.js';
import { startSystem } from './process/system.js';
import type { System, SystemOptions } from './process/system-types.js';

const USAGE = `Usage: npm run chaos [-- options]

Starts the five services (real processes, free ports, a fresh temporary event log), writes posts and
comments at a bounded rate while killing services with SIGKILL and restarting them, then checks that every
acknowledged write is there exactly once with its final status. Exit code 1 on any discrepancy.

Options:
  --seed N          the seed of every random choice (default: drawn from the clock, printed)
  --duration S      how long to write and kill, in seconds (default 60)
  --min-kills N     the kills the schedule must reach within the duration (default 20)
  --rate N          writes started per second, at most (default 25)
  --transport T     http (the event-bus) or nats (NATS JetStream: the nats-server is killed too; it
                    runs its own unless NATS_URL is set); default: EVENT_TRANSPORT, else http
  --json            print the results as JSON on stdout (the report goes to stderr)
  --help            this text`;

interface Options {
  seed: number;
  durationS: number;
  minKills: number;
  rate: number;
  json: boolean;
  transport: Pick<SystemOptions, 'transport' | 'natsUrl' | 'natsStream'>;
}

/** Writes in flight at once, at most: the rate is a ceiling, not a promise, on a busy machine. */
const MAX_IN_FLIGHT = 8;
/** A write refused before it reached the service (ECONNREFUSED) changed nothing: it is sent again. */
const REFUSED_RETRIES = 5;
const WRITE_TIMEOUT_MS = 5000;
const QUIET_TIMEOUT_MS = 60_000;
const RESTART_TIMEOUT_MS = 30_000;
/**
 * What to kill, drawn from this list: what holds the only state on disk twice as often, the bus or (on
 * nats) the nats-server, whose gateway then counts as one more service; a nats-server we did not start
 * (NATS_URL) is left alone.
 */
function killWeights(system: System): readonly ProcessName[] {
  if (!system.nats) return ['event-bus', ...SERVICE_NAMES];
  return system.nats.ours ? ['nats', 'nats', ...SERVICE_NAMES] : SERVICE_NAMES;
}
/** Services down at the same time, at most. */
const MAX_DOWN = 2;

function parseOptions(argv: string[]): Options {
  const values = parseScriptArgs(
    argv,
    {
      seed: { type: 'string' },
      duration: { type: 'string', default: '60' },
      'min-kills': { type: 'string', default: '20' },
      rate: { type: 'string', default: '25' },
      transport: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
    USAGE,
  );
  const whole = (name: string, value: string, min: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: a whole number, ${min} or more`);
    return n;
  };
  return {
    seed: values.seed === undefined ? Date.now() % 2 ** 31 : whole('seed', values.seed, 0),
    durationS: whole('duration', values.duration, 1),
    minKills: whole('min-kills', values['min-kills'], 0),
    rate: whole('rate', values.rate, 1),
    json: values.json,
    transport: transportOptions(values.transport),
  };
}

// ---------------------------------------------------------------------------------------------- writes

interface WriteTally {
  attempted: number;
  posts: AckedPost[];
  comments: AckedComment[];
  /** Writes without a 201, by why: the status answered, or the network error. */
  notAcknowledged: Record<string, number>;
  /** Sends repeated after ECONNREFUSED (the request never reached a process). */
  resentAfterRefused: number;
  /** 201 answers whose comments array lacked the new comment: the course's contract broken. */
  answersWithoutTheirComment: number;
}

/**
 * Posts and comments at up to `rate` per second until the deadline: one in five a new post, half of those
 * commented on at once (a post created moments ago), the other comments on a recent or a random post, one
 * in three containing "orange". Only a 201 counts as acknowledged.
 */
async function writeUntil(system: System, random: Random, options: Options, deadline: number) {
  const tally: WriteTally = {
    attempted: 0,
    posts: [],
    comments: [],
    notAcknowledged: {},
    resentAfterRefused: 0,
    answersWithoutTheirComment: 0,
  };
  let n = 0;
  let inFlight = 0;

  const attempt = async (url: string, body: object) => {
    for (let tries = 0; ; tries++) {
      const answer = await send(url, body, WRITE_TIMEOUT_MS);
      if (answer.error !== 'ECONNREFUSED' || tries >= REFUSED_RETRIES || Date.now() > deadline) return answer;
      tally.resentAfterRefused++;
      await sleep(200);
    }
  };
  const refuse = (why: string) => (tally.notAcknowledged[why] = (tally.notAcknowledged[why] ?? 0) + 1);

  const createComment = async (postId: string) => {
    tally.attempted++;
    const content = `c${n++} ${random.chance(1 / 3) ? 'about an orange' : 'a fine one'}`;
    const answer = await attempt(`${system.urls.comments}/posts/${postId}/comments`, { content });
    if (answer.status !== 201) return refuse(String(answer.status || answer.error));
    const created = (JSON.parse(answer.body) as { id: string; content: string }[]).find(
      (c) => c.content === content,
    );
    if (created) tally.comments.push({ id: created.id, postId, content });
    else tally.answersWithoutTheirComment++;
  };

  const createPost = async () => {
    tally.attempted++;
    const title = `post ${n++}`;
    const answer = await attempt(`${system.urls.posts}/posts/create`, { title });
    if (answer.status !== 201) return refuse(String(answer.status || answer.error));
    const post = JSON.parse(answer.body) as AckedPost;
    tally.posts.push(post);
    if (random.chance(0.5)) await createComment(post.id);
  };

  const oneWrite = () => {
    const posts = tally.posts;
    if (posts.length === 0 || random.chance(0.2)) return createPost();
    const recent = random.chance(0.5);
    const post = recent
      ? posts[posts.length - 1 - Math.floor(random.next() * Math.min(3, posts.length))]!
      : random.pick(posts);
    return createComment(post.id);
  };

  const writes: Promise<unknown>[] = [];
  while (Date.now() < deadline) {
    if (inFlight < MAX_IN_FLIGHT) {
      inFlight++;
      writes.push(oneWrite().finally(() => inFlight--));
    }
    await sleep(1000 / options.rate);
  }
  await Promise.all(writes);
  return tally;
}

/**
 * A refused write may be a network error or a 503 (the bus or a service down: try again); any other status
 * (a 500, a 404 for a post that was acknowledged) is a bug, and counts as a discrepancy.
 */
function unexpectedAnswers(notAcknowledged: Record<string, number>): string[] {
  return Object.entries(notAcknowledged)
    .filter(([why]) => /^\d+$/.test(why) && why !== '503')
    .map(([status, n]) => `${n} writes answered ${status}`);
}

// ---------------------------------------------------------------------------------------------- kills

interface Kill {
  service: ProcessName;
  /** When it was killed, from the start of the run. */
  atMs: number;
  /** How long it stayed down before its restart began. */
  downMs: number;
  /** From the restart to its `/readyz` 200; null if it did not come back in time. */
  restartMs: number | null;
}

/**
 * Kills a service with SIGKILL every so often until the deadline, and restarts each one after a random
 * pause without waiting for it, so a slow restart does not hold up the next kill and two outages can
 * overlap (at most `MAX_DOWN` services down at once). The pauses between kills are drawn so that `minKills`
 * fit in 90% of the time; when the schedule falls behind, the pause before the next kill is skipped.
 */
async function killUntil(
  system: System,
  random: Random,
  options: Options,
  startedAt: number,
  deadline: number,
) {
  const kills: Kill[] = [];
  const restarts: Promise<void>[] = [];
  const down = new Set<ProcessName>();
  const weights = killWeights(system);
  const durationMs = options.durationS * 1000;
  const cycleMs = (0.9 * durationMs) / Math.max(1, options.minKills);
  while (Date.now() < deadline) {
    const gapMs = random.between(0.3, 1.2) * cycleMs;
    const downMs = random.between(0.05, 0.5) * cycleMs;
    const service = random.pick(weights);
    const due = ((Date.now() - startedAt) / durationMs) * options.minKills;
    if (kills.length >= due) await sleep(gapMs);
    while (down.size >= MAX_DOWN || down.has(service)) await sleep(50);
    if (Date.now() >= deadline) break;
    const kill: Kill = { service, atMs: Date.now() - startedAt, downMs: Math.round(downMs), restartMs: null };
    kills.push(kill);
    down.add(service);
    await system.kill(service, 'SIGKILL');
    restarts.push(
      restartAfter(system, service, downMs).then((ms) => {
        kill.restartMs = ms;
        down.delete(service);
      }),
    );
  }
  await Promise.all(restarts);
  return kills;
}

/** Restarts a killed service after `downMs`: the time from the restart to its `/readyz` 200, or null. */
async function restartAfter(system: System, service: ProcessName, downMs: number): Promise<number | null> {
  await sleep(downMs);
  const restarting = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>(
    (resolve) => (timer = setTimeout(() => resolve(null), RESTART_TIMEOUT_MS)),
  );
  return Promise.race([system.restart(service).then(() => Date.now() - restarting), timeout])
    .catch(() => null)
    .finally(() => clearTimeout(timer)); // a pending timer would keep the process alive after the report
}

// ---------------------------------------------------------------------------------------------- the end

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
async function waitForQuiet(system: System, timeoutMs: number): Promise<number | null> {
  const started = Date.now();
  let stableHead: number | undefined;
  let stablePolls = 0;
  while (Date.now() - started < timeoutMs) {
    await sleep(200);
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
async function observe(system: System): Promise<Observed> {
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

// ---------------------------------------------------------------------------------------------- main

interface Results {
  seed: number;
  durationS: number;
  minKills: number;
  rate: number;
  transport: string;
  replay: string;
  writes: {
    attempted: number;
    acknowledgedPosts: number;
    acknowledgedComments: number;
    notAcknowledged: Record<string, number>;
    resentAfterRefused: number;
  };
  kills: Kill[];
  killsByService: Record<string, number>;
  restarts: number;
  quietAfterMs: number | null;
  events: number;
  discrepancies: string[];
}

function report(r: Results): string {
  const lines = [
    `seed ${r.seed}, ${r.durationS} s, at most ${r.rate} writes/s, transport ${r.transport}`,
    `writes: ${r.writes.attempted} attempted, ${r.writes.acknowledgedPosts} posts and ` +
      `${r.writes.acknowledgedComments} comments acknowledged (201), not acknowledged: ` +
      `${JSON.stringify(r.writes.notAcknowledged)}, ${r.writes.resentAfterRefused} sends repeated after ECONNREFUSED`,
    `kills: ${r.kills.length} SIGKILLs (${Object.entries(r.killsByService)
      .map(([name, n]) => `${name} ${n}`)
      .join(', ')}), ${r.restarts} restarts`,
    ...r.kills.map(
      (k) =>
        `  at ${round(k.atMs / 1000)} s: ${k.service} killed, down ${k.downMs} ms, ` +
        (k.restartMs === null ? 'did NOT come back' : `ready ${k.restartMs} ms after its restart`),
    ),
    r.quietAfterMs === null ? 'quiet: NOT reached' : `quiet ${r.quietAfterMs} ms after the last write`,
    `log: ${r.events} events`,
    r.discrepancies.length === 0
      ? 'discrepancies: 0'
      : `discrepancies: ${r.discrepancies.length}\n${r.discrepancies.map((d) => `  - ${d}`).join('\n')}`,
  ];
  if (r.discrepancies.length > 0) lines.push(`seed ${r.seed}; replay with: ${r.replay}`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    say(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  const transport = options.transport.transport ?? 'http';
  const replay = `npm run chaos -- --seed ${options.seed} --duration ${options.durationS} --min-kills ${options.minKills} --rate ${options.rate} --transport ${transport}`;
  say(`chaos: seed ${options.seed} (${replay})`);
  const system = await startSystem({
    ...options.transport,
    eventBusToken: eventBusToken(),
    quiet: true,
    host: '127.0.0.1',
    env: { LOG_LEVEL: 'warn' },
    // Short retry backoff, so a subscriber back from the dead gets its events soon after.
    serviceEnv: { 'event-bus': { RETRY_MAX_MS: '500' } },
    onStatus: () => undefined,
  });
  process.once('SIGINT', () => void system.stop().finally(() => process.exit(130)));
  try {
    const startedAt = Date.now();
    const deadline = startedAt + options.durationS * 1000;
    // Two generators from the one seed, so the writes' choices do not shift the kills' and back.
    const [tally, kills] = await Promise.all([
      writeUntil(system, seededRandom(options.seed), options, deadline),
      killUntil(system, seededRandom(options.seed ^ 0x5bd1e995), options, startedAt, deadline),
    ]);
    say(`writing and killing done; waiting for the bus to deliver everything`);
    const quietAfterMs = await waitForQuiet(system, QUIET_TIMEOUT_MS);
    const observed = await observe(system);
    const discrepancies = [
      ...(quietAfterMs === null ? [`the system was not quiet within ${QUIET_TIMEOUT_MS / 1000} s`] : []),
      ...(kills.length < options.minKills
        ? [`only ${kills.length} kills, fewer than ${options.minKills}`]
        : []),
      ...kills
        .filter((k) => k.restartMs === null)
        .map((k) => `${k.service} did not come back after its kill`),
      ...unexpectedAnswers(tally.notAcknowledged),
      ...(tally.answersWithoutTheirComment > 0
        ? [`${tally.answersWithoutTheirComment} comment 201 answers lacked the new comment`]
        : []),
      ...findDiscrepancies(tally, observed),
    ];
    const results: Results = {
      seed: options.seed,
      durationS: options.durationS,
      minKills: options.minKills,
      rate: options.rate,
      transport,
      replay,
      writes: {
        attempted: tally.attempted,
        acknowledgedPosts: tally.posts.length,
        acknowledgedComments: tally.comments.length,
        notAcknowledged: tally.notAcknowledged,
        resentAfterRefused: tally.resentAfterRefused,
      },
      kills,
      killsByService: Object.fromEntries(
        system.status().map(({ name }) => [name, kills.filter((k) => k.service === name).length]),
      ),
      restarts: system.status().reduce((sum, s) => sum + s.restarts, 0),
      quietAfterMs,
      events: observed.events.length,
      discrepancies,
    };
    say(report(results));
    if (options.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    process.exitCode = discrepancies.length > 0 ? 1 : 0;
  } finally {
    // Our keep-alive sockets first: a service stopping waits for open connections to close.
    closeAgent();
    await system.stop();
  }
}

runScript('chaos', main);
