/**
 * `npm run chaos`: the five services as real processes, a seeded random mix of writes, and meanwhile
 * SIGKILLs at random (the bus included), each service restarted after a random pause. At the end, once the
 * bus has delivered everything, every write that got its 201 must be there exactly once with its final
 * status, and the log must hold no event twice (scripts/src/chaos-check.ts). docs/reliability.md.
 * With `--transport nats` the services run on NATS JetStream, and the nats-server is killed too; with
 * `--replicas` and `--nats-nodes`, several processes of each service on a JetStream cluster, every replica's
 * view checked, then that of one more query replica started at the end.
 *
 *   node scripts/dist/chaos.js [--seed N] [--duration S] [--min-kills N] [--rate N] [--transport T]
 *     [--replicas N] [--nats-nodes N] [--json]
 *
 * The seed fixes every random choice (what to write, what to kill, how long to wait); the timing of a real
 * run on a shared machine still differs, so a replay makes the same choices, not the same interleaving.
 */
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { killUntil, type Kill } from './chaos-kills.js';
import { parseOptions, USAGE, type ChaosOptions } from './chaos-options.js';
import { observeSettled, waitForQuiet } from './chaos-observe.js';
import { readUntil, unexpectedAnswers, writeUntil, type WriteTally } from './chaos-writes.js';
import { closeAgent, eventBusToken, round, runScript, say, seededRandom } from './harness.js';
import { formatServiceLine } from './logs.js';
import { startSystem } from './process/system.js';
import type { System } from './process/system-types.js';

const QUIET_TIMEOUT_MS = 60_000;
/** How long the views may take, once quiet, to show every write (a replica's consumer made again). */
const SETTLE_TIMEOUT_MS = 30_000;

interface Results {
  seed: number;
  durationS: number;
  minKills: number;
  rate: number;
  transport: string;
  replicas: number;
  natsNodes: number;
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
  /** Every answer during the run, writes and reads, by route then status or network error. */
  answers: WriteTally['answers'];
  quietAfterMs: number | null;
  /** From quiet to every view right (null: never within SETTLE_TIMEOUT_MS). */
  settledAfterMs: number | null;
  /** The query replica started once the rest was checked (with `--replicas` above 1): what was wrong in it. */
  lateReplica: { name: string; readyMs: number; discrepancies: number } | null;
  events: number;
  discrepancies: string[];
}

function report(r: Results): string {
  const scale =
    r.replicas > 1 || r.natsNodes > 1 ? `, ${r.replicas} replicas, ${r.natsNodes} NATS nodes` : '';
  const late = r.lateReplica;
  const lines = [
    `seed ${r.seed}, ${r.durationS} s, at most ${r.rate} writes/s, transport ${r.transport}${scale}`,
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
    ...Object.entries(r.answers).map(
      ([route, byStatus]) => `answers to ${route}: ${JSON.stringify(byStatus)}`,
    ),
    r.quietAfterMs === null ? 'quiet: NOT reached' : `quiet ${r.quietAfterMs} ms after the last write`,
    r.settledAfterMs === null
      ? `views: NOT all right within ${SETTLE_TIMEOUT_MS / 1000} s`
      : `every view right ${r.settledAfterMs} ms after quiet (checking included)`,
    ...(late
      ? [
          `${late.name} started at the end: ready in ${late.readyMs} ms, ` +
            (late.discrepancies === 0
              ? 'the same view'
              : `NOT the same view (${late.discrepancies} discrepancies)`),
        ]
      : []),
    `log: ${r.events} events`,
    r.discrepancies.length === 0
      ? 'discrepancies: 0'
      : `discrepancies: ${r.discrepancies.length}\n${r.discrepancies.map((d) => `  - ${d}`).join('\n')}`,
  ];
  if (r.discrepancies.length > 0) lines.push(`seed ${r.seed}; replay with: ${r.replay}`);
  return lines.join('\n');
}

/** Writes, reads and kills at once until the deadline, then waits for quiet and checks what the system holds. */
async function run(
  system: System,
  options: ChaosOptions,
  replay: string,
  note: (line: string) => void,
): Promise<Results> {
  const startedAt = Date.now();
  const deadline = startedAt + options.durationS * 1000;
  const reads: Pick<WriteTally, 'answers'> = { answers: {} };
  // Two generators from the one seed, so the writes' choices do not shift the kills' and back.
  const [tally, kills] = await Promise.all([
    writeUntil(system, seededRandom(options.seed), options.rate, deadline),
    killUntil(system, seededRandom(options.seed ^ 0x5bd1e995), options, startedAt, deadline, note),
    readUntil(system, reads, deadline),
  ]);
  Object.assign(tally.answers, reads.answers);
  say(`writing and killing done; waiting for the bus to deliver everything`);
  const quietAfterMs = await waitForQuiet(system, QUIET_TIMEOUT_MS);
  let settled = await observeSettled(system, tally, SETTLE_TIMEOUT_MS);
  const settledAfterMs = settled.settledAfterMs;
  let lateReplica: Results['lateReplica'] = null;
  if (options.replicas > 1) {
    const starting = Date.now();
    const { name } = await system.addReplica('query');
    say(`${name} started; checking that it shows the same`);
    const readyMs = Date.now() - starting;
    settled = await observeSettled(system, tally, SETTLE_TIMEOUT_MS);
    const itsOwn = settled.discrepancies.filter((d) => d.startsWith(`${name}:`) || d.startsWith(`${name} `));
    lateReplica = { name, readyMs, discrepancies: itsOwn.length };
  }
  const discrepancies = [
    ...(quietAfterMs === null ? [`the system was not quiet within ${QUIET_TIMEOUT_MS / 1000} s`] : []),
    ...(kills.length < options.minKills
      ? [`only ${kills.length} kills, fewer than ${options.minKills}`]
      : []),
    ...kills.filter((k) => k.restartMs === null).map((k) => `${k.service} did not come back after its kill`),
    ...unexpectedAnswers(tally),
    ...(tally.answersWithoutTheirComment > 0
      ? [`${tally.answersWithoutTheirComment} comment 201 answers lacked the new comment`]
      : []),
    ...settled.discrepancies,
  ];
  return {
    seed: options.seed,
    durationS: options.durationS,
    minKills: options.minKills,
    rate: options.rate,
    transport: options.transport.transport ?? 'http',
    replicas: options.replicas,
    natsNodes: options.natsNodes,
    replay,
    writes: writesOf(tally),
    kills,
    killsByService: Object.fromEntries(
      system.status().map(({ name }) => [name, kills.filter((k) => k.service === name).length]),
    ),
    restarts: system.status().reduce((sum, s) => sum + s.restarts, 0),
    answers: tally.answers,
    quietAfterMs,
    settledAfterMs,
    lateReplica,
    events: settled.observed.events.length,
    discrepancies,
  };
}

function writesOf(tally: WriteTally): Results['writes'] {
  return {
    attempted: tally.attempted,
    acknowledgedPosts: tally.posts.length,
    acknowledgedComments: tally.comments.length,
    notAcknowledged: tally.notAcknowledged,
    resentAfterRefused: tally.resentAfterRefused,
  };
}

async function main(): Promise<void> {
  let options: ChaosOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    say(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
  const transport = options.transport.transport ?? 'http';
  const scale =
    options.replicas > 1 || options.natsNodes > 1
      ? ` --replicas ${options.replicas} --nats-nodes ${options.natsNodes}`
      : '';
  const replay = `npm run chaos -- --seed ${options.seed} --duration ${options.durationS} --min-kills ${options.minKills} --rate ${options.rate} --transport ${transport}${scale}`;
  say(`chaos: seed ${options.seed} (${replay})`);
  const logs = serviceLog(options.logFile);
  logs.note(`chaos: seed ${options.seed} (${replay})`);
  const system = await startSystem({
    ...options.transport,
    replicas: options.replicas,
    natsNodes: options.natsNodes,
    eventBusToken: eventBusToken(),
    quiet: true,
    host: '127.0.0.1',
    env: { LOG_LEVEL: 'warn' },
    onLine: (name, line, stream) => logs.write(name, line, stream),
    // Short retry backoff, so a subscriber back from the dead gets its events soon after.
    serviceEnv: { 'event-bus': { RETRY_MAX_MS: '500' } },
    onStatus: () => undefined,
  });
  process.once('SIGINT', () => void system.stop().finally(() => process.exit(130)));
  try {
    const results = await run(system, options, replay, logs.note);
    say(`${report(results)}\nthe services' log lines and the kills: ${options.logFile}`);
    if (options.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    process.exitCode = results.discrepancies.length > 0 ? 1 : 0;
  } finally {
    // Our keep-alive sockets first: a service stopping waits for open connections to close.
    closeAgent();
    await system.stop();
    await logs.close();
  }
}

/**
 * The services' lines (warn and above), one readable line each, and the kills between them: what a
 * discrepancy is read against, since the run's own output keeps only the report.
 */
function serviceLog(file: string) {
  mkdirSync(dirname(file), { recursive: true });
  const out = createWriteStream(file);
  const stamp = () => new Date().toISOString().slice(11, 23);
  return {
    write: (name: string, line: string, stream: 'stdout' | 'stderr') =>
      out.write(`${formatServiceLine(name, line, { stderr: stream === 'stderr' })}\n`),
    note: (line: string) => out.write(`${stamp()} chaos      ${line}\n`),
    close: () => new Promise<void>((resolve) => out.end(resolve)),
  };
}

runScript('chaos', main);
