/**
 * `npm run soak`: the five services as real processes under a steady mix of reads and writes for a while
 * (2 minutes by default), to see what time does: errors, latency percentiles per interval, and each
 * service's memory (RSS), with a verdict on its growth over the second half. docs/reliability.md.
 *
 *   node scripts/dist/soak.js [--duration S] [--rate N] [--interval S] [--seed N] [--json]
 *
 * Every request goes to 127.0.0.1; the load is bounded (a rate, and at most 64 requests in flight).
 */
import {
  closeAgent,
  eventBusToken,
  parseScriptArgs,
  percentile,
  round,
  rssMiB,
  runScript,
  say,
  seededRandom,
  send,
  slope,
  type Answer,
} from './harness.js';
import { delay } from '@blog/common/process';
import { SERVICE_NAMES } from './process/names.js';
import { startSystem } from './process/system.js';
import type { System } from './process/system-types.js';

const USAGE = `Usage: npm run soak [-- options]

Starts the five services (real processes, free ports, a fresh temporary event log) and sends a steady mix
of reads and writes, printing errors, latency percentiles and each service's RSS every interval, then a
verdict on memory growth. Exit code 1 if any request failed.

Options:
  --duration S      how long, in seconds (default 120)
  --rate N          requests started per second (default 100)
  --interval S      seconds between two reports (default 10)
  --growth-limit M  MiB per minute of RSS growth (fitted over the second half) above which a service
                    is reported as growing (default 16)
  --seed N          the seed of the request mix (default 1)
  --json            print the results as JSON on stdout (the report goes to stderr)
  --help            this text`;

interface Options {
  durationS: number;
  rate: number;
  intervalS: number;
  growthLimit: number;
  seed: number;
  json: boolean;
}

const MAX_IN_FLIGHT = 64;
const REQUEST_TIMEOUT_MS = 10_000;

function parseOptions(argv: string[]): Options {
  const values = parseScriptArgs(
    argv,
    {
      duration: { type: 'string', default: '120' },
      rate: { type: 'string', default: '100' },
      interval: { type: 'string', default: '10' },
      'growth-limit': { type: 'string', default: '16' },
      seed: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
    },
    USAGE,
  );
  const positive = (name: string, value: string) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: a number above 0`);
    return n;
  };
  return {
    durationS: positive('duration', values.duration),
    rate: positive('rate', values.rate),
    intervalS: positive('interval', values.interval),
    growthLimit: positive('growth-limit', values['growth-limit']),
    seed: Math.trunc(positive('seed', values.seed)),
    json: values.json,
  };
}

// ---------------------------------------------------------------------------------------------- the load

type Kind = 'create post' | 'create comment' | 'GET query /posts' | 'GET comments' | 'GET posts /posts';

/** The mix: mostly reads, as a blog is; writes spread over a few dozen posts. */
const MIX: [Kind, number][] = [
  ['create post', 0.03],
  ['create comment', 0.27],
  ['GET query /posts', 0.45],
  ['GET comments', 0.15],
  ['GET posts /posts', 0.1],
];

interface Sample {
  kind: Kind;
  ms: number;
  ok: boolean;
}

function chooseKind(draw: number): Kind {
  let sum = 0;
  for (const [kind, share] of MIX) if (draw < (sum += share)) return kind;
  return MIX.at(-1)![0];
}

/** Sends one request of `kind`; a write's 201 and a read's 200 (or 304) count as success. */
async function request(system: System, kind: Kind, postIds: string[], pick: () => number): Promise<Answer> {
  const postId = postIds[Math.floor(pick() * postIds.length)]!;
  switch (kind) {
    case 'create post': {
      const answer = await send(`${system.urls.posts}/posts/create`, { title: 'soak' }, REQUEST_TIMEOUT_MS);
      if (answer.status === 201) postIds.push((JSON.parse(answer.body) as { id: string }).id);
      return answer;
    }
    case 'create comment': {
      const content = pick() < 0.2 ? 'an orange' : 'a comment';
      return send(`${system.urls.comments}/posts/${postId}/comments`, { content }, REQUEST_TIMEOUT_MS);
    }
    case 'GET query /posts':
      return send(`${system.urls.query}/posts`, undefined, REQUEST_TIMEOUT_MS);
    case 'GET comments':
      return send(`${system.urls.comments}/posts/${postId}/comments`, undefined, REQUEST_TIMEOUT_MS);
    case 'GET posts /posts':
      return send(`${system.urls.posts}/posts`, undefined, REQUEST_TIMEOUT_MS);
  }
}

const succeeded = (kind: Kind, answer: Answer) =>
  kind.startsWith('create') ? answer.status === 201 : answer.status === 200;

// ---------------------------------------------------------------------------------------------- figures

interface Interval {
  /** Seconds from the start of the load to the end of this interval. */
  atS: number;
  requests: number;
  errors: number;
  /** Requests not sent because 64 were already in flight (the system fell behind the rate). */
  skipped: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  rssMiB: Record<string, number | null>;
}

function summarize(samples: Sample[]) {
  const sorted = samples.map((s) => s.ms).sort((a, b) => a - b);
  return {
    p50Ms: round(percentile(sorted, 0.5), 2),
    p90Ms: round(percentile(sorted, 0.9), 2),
    p99Ms: round(percentile(sorted, 0.99), 2),
    maxMs: round(sorted.at(-1) ?? Number.NaN, 2),
  };
}

function memoryOf(system: System): Record<string, number | null> {
  return Object.fromEntries(system.status().map((s) => [s.name, rssMiB(s.pid) ?? null]));
}

interface Growth {
  startMiB: number | null;
  endMiB: number | null;
  /** Least-squares slope of RSS over the second half of the run, in MiB per minute. */
  secondHalfMiBPerMin: number | null;
  verdict: 'steady' | 'growing' | 'unknown';
}

/** Per service: RSS at start and end, and whether it still grew over the second half. */
function memoryGrowth(memory: { atS: number; rssMiB: Record<string, number | null> }[], options: Options) {
  const growth: Record<string, Growth> = {};
  for (const name of SERVICE_NAMES) {
    const points = memory
      .filter((m) => m.atS >= options.durationS / 2 && m.rssMiB[name] != null)
      .map((m) => ({ x: m.atS / 60, y: m.rssMiB[name]! }));
    const perMin = points.length >= 2 ? slope(points) : null;
    growth[name] = {
      startMiB: round(memory[0]?.rssMiB[name] ?? Number.NaN) || null,
      endMiB: round(memory.at(-1)?.rssMiB[name] ?? Number.NaN) || null,
      secondHalfMiBPerMin: perMin === null ? null : round(perMin, 2),
      verdict: perMin === null ? 'unknown' : perMin > options.growthLimit ? 'growing' : 'steady',
    };
  }
  return growth;
}

// ---------------------------------------------------------------------------------------------- main

/** The posts the load comments on and reads. */
async function createFirstPosts(system: System): Promise<string[]> {
  const postIds: string[] = [];
  for (let i = 0; i < 5; i++) {
    const answer = await send(`${system.urls.posts}/posts/create`, { title: `post ${i}` });
    if (answer.status !== 201)
      throw new Error(`could not create the first posts: ${answer.status} ${answer.body}`);
    postIds.push((JSON.parse(answer.body) as { id: string }).id);
  }
  return postIds;
}

async function soak(system: System, options: Options) {
  const random = seededRandom(options.seed);
  const postIds = await createFirstPosts(system);

  const intervals: Interval[] = [];
  const memory = [{ atS: 0, rssMiB: memoryOf(system) }];
  const errorsByWhy: Record<string, number> = {};
  let current: Sample[] = [];
  const all: Sample[] = [];
  let skipped = 0;
  let inFlight = 0;
  const started = performance.now();
  const elapsedS = () => (performance.now() - started) / 1000;
  let nextReport = options.intervalS;
  const pending: Promise<void>[] = [];

  for (let n = 0; elapsedS() < options.durationS; n++) {
    // Paced by the clock, not by the previous request: a slow answer does not slow the load down.
    const due = (n / options.rate) * 1000 - (performance.now() - started);
    if (due > 0) await delay(due);
    if (inFlight >= MAX_IN_FLIGHT) skipped++;
    else {
      const kind = chooseKind(random.next());
      inFlight++;
      pending.push(
        request(system, kind, postIds, random.next).then((answer) => {
          inFlight--;
          const ok = succeeded(kind, answer);
          if (!ok) {
            const why = `${kind}: ${answer.status || answer.error}`;
            errorsByWhy[why] = (errorsByWhy[why] ?? 0) + 1;
          }
          const sample = { kind, ms: answer.ms, ok };
          current.push(sample);
          all.push(sample);
        }),
      );
    }
    if (elapsedS() >= nextReport) {
      const rss = memoryOf(system);
      memory.push({ atS: round(elapsedS()), rssMiB: rss });
      const interval: Interval = {
        atS: round(elapsedS()),
        requests: current.length,
        errors: current.filter((s) => !s.ok).length,
        skipped,
        ...summarize(current),
        rssMiB: Object.fromEntries(Object.entries(rss).map(([k, v]) => [k, v === null ? null : round(v)])),
      };
      intervals.push(interval);
      say(formatInterval(interval));
      current = [];
      skipped = 0;
      nextReport += options.intervalS;
    }
    // The oldest have settled (at most MAX_IN_FLIGHT are in flight) and a request never rejects: forgotten.
    if (pending.length > 10_000) void pending.splice(0, pending.length - MAX_IN_FLIGHT);
  }
  await Promise.all(pending);
  memory.push({ atS: round(elapsedS()), rssMiB: memoryOf(system) });
  const errors = all.filter((s) => !s.ok).length;
  return {
    durationS: options.durationS,
    rate: options.rate,
    seed: options.seed,
    requests: all.length,
    achievedPerSec: round(all.length / elapsedS()),
    errors,
    errorsByWhy,
    skipped: intervals.reduce((sum, i) => sum + i.skipped, 0),
    latency: summarize(all),
    latencyByKind: Object.fromEntries(
      MIX.map(([kind]) => [kind, summarize(all.filter((s) => s.kind === kind))]).filter(([, s]) => s),
    ),
    intervals,
    memory: memoryGrowth(memory, options),
    growthLimitMiBPerMin: options.growthLimit,
  };
}

function formatInterval(i: Interval): string {
  const rss = Object.entries(i.rssMiB)
    .map(([name, v]) => `${name} ${v ?? '?'}`)
    .join(', ');
  return (
    `${String(i.atS).padStart(6)} s: ${i.requests} requests, ${i.errors} errors, ${i.skipped} skipped; ` +
    `p50 ${i.p50Ms} ms, p90 ${i.p90Ms}, p99 ${i.p99Ms}, max ${i.maxMs}; RSS MiB: ${rss}`
  );
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    say(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  say(`soak: ${options.durationS} s at ${options.rate} requests/s, a report every ${options.intervalS} s`);
  const system = await startSystem({
    eventBusToken: eventBusToken(),
    quiet: true,
    host: '127.0.0.1',
    env: { LOG_LEVEL: 'warn' },
    onStatus: say,
  });
  process.once('SIGINT', () => void system.stop().finally(() => process.exit(130)));
  try {
    const results = await soak(system, options);
    say(
      `total: ${results.requests} requests (${results.achievedPerSec}/s), ${results.errors} errors ` +
        `${JSON.stringify(results.errorsByWhy)}, ${results.skipped} skipped; p50 ${results.latency.p50Ms} ms, ` +
        `p90 ${results.latency.p90Ms}, p99 ${results.latency.p99Ms}, max ${results.latency.maxMs}`,
    );
    for (const [name, g] of Object.entries(results.memory)) {
      say(
        `  ${name}: RSS ${g.startMiB} → ${g.endMiB} MiB, ${g.secondHalfMiBPerMin} MiB/min over the second ` +
          `half: ${g.verdict}`,
      );
    }
    if (options.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    process.exitCode = results.errors > 0 ? 1 : 0;
  } finally {
    closeAgent();
    await system.stop();
  }
}

runScript('soak', main);
