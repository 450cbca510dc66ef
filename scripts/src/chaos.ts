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
import { findDiscrepancies } from './chaos-check.js';
import { killUntil, type Kill } from './chaos-kills.js';
import { parseOptions, USAGE, type ChaosOptions } from './chaos-options.js';
import { observe, waitForQuiet } from './chaos-observe.js';
import { unexpectedAnswers, writeUntil, type WriteTally } from './chaos-writes.js';
import { closeAgent, eventBusToken, round, runScript, say, seededRandom } from './harness.js';
import { startSystem } from './process/system.js';
import type { System } from './process/system-types.js';

const QUIET_TIMEOUT_MS = 60_000;

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

/** Writes and kills at once until the deadline, then waits for quiet and checks what the system holds. */
async function run(system: System, options: ChaosOptions, replay: string): Promise<Results> {
  const startedAt = Date.now();
  const deadline = startedAt + options.durationS * 1000;
  // Two generators from the one seed, so the writes' choices do not shift the kills' and back.
  const [tally, kills] = await Promise.all([
    writeUntil(system, seededRandom(options.seed), options.rate, deadline),
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
    ...kills.filter((k) => k.restartMs === null).map((k) => `${k.service} did not come back after its kill`),
    ...unexpectedAnswers(tally.notAcknowledged),
    ...(tally.answersWithoutTheirComment > 0
      ? [`${tally.answersWithoutTheirComment} comment 201 answers lacked the new comment`]
      : []),
    ...findDiscrepancies(tally, observed),
  ];
  return {
    seed: options.seed,
    durationS: options.durationS,
    minKills: options.minKills,
    rate: options.rate,
    transport: options.transport.transport ?? 'http',
    replay,
    writes: writesOf(tally),
    kills,
    killsByService: Object.fromEntries(
      system.status().map(({ name }) => [name, kills.filter((k) => k.service === name).length]),
    ),
    restarts: system.status().reduce((sum, s) => sum + s.restarts, 0),
    quietAfterMs,
    events: observed.events.length,
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
    const results = await run(system, options, replay);
    say(report(results));
    if (options.json) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    process.exitCode = results.discrepancies.length > 0 ? 1 : 0;
  } finally {
    // Our keep-alive sockets first: a service stopping waits for open connections to close.
    closeAgent();
    await system.stop();
  }
}

runScript('chaos', main);
