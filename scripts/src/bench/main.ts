/**
 * `npm run bench`: how fast the blog is, measured end to end on real processes (docs/performance.md).
 *
 *   node scripts/dist/bench/main.js [--quick] [--json] [--out FILE] [--log-level LEVEL] [--transport http|nats]
 *   node scripts/dist/bench/main.js --posts URL --comments URL --query URL --bus URL   (a system already running)
 *   node scripts/dist/bench/main.js --only latency --hops            (where a comment's time goes, hop by hop)
 *   node scripts/dist/bench/main.js --only throughput --cpu-prof DIR (where each service spends its CPU)
 *
 * One run measures, in this order (the throughput phase comes last of the three on the running system, since
 * its thousands of comments would make every later `GET /posts` large):
 *   1. latency: one comment at a time, from sending its POST (and from its `201`) to its final status
 *      (approved / rejected) pushed by query: on the freshly started system, then seen by polling, then
 *      (the headline) in the steady state, once the system and the floor (floor.ts: bare processes making
 *      the comment's exchanges, the event path's over WebSockets, with no work) have each taken 3,000
 *      comments, the two in alternate blocks;
 *   2. query's `GET /posts` requests per second (autocannon) with 500 posts, beside a bare node:http server
 *      sending the same bytes, measured the same way;
 *   3. throughput: concurrent writers for a fixed time, then until every comment is final in query; then
 *      the same through the floor;
 *   4. the time query takes from its spawn to `/readyz` 200 on a log of 100,000 events;
 *   5. the client: its JavaScript gzipped, and the time from navigation to the post list drawn in Chromium
 *      (through the local router, with the posts the phases before made; run after the rate phase).
 * It prints a markdown table with the targets and the course's figures beside ours, and writes everything
 * as JSON to `.bench/results.json` (`results-quick.json` for `--quick`, `results-partial.json` for a run
 * with --only, --hops, --cpu-prof, --poll-interval or --nats-nodes, so those never overwrite the standard
 * results; a `--transport nats` run adds `-nats` to the name).
 *
 * `--replicas 1,2` (on NATS) is a mode of its own (replicas.ts): the latency and throughput phases for each
 * replica count, one after the other on the same nats-servers, written to `.bench/results-replicas-nats.json`.
 *
 * Every load goes to 127.0.0.1 only, and every phase is bounded in time.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { eventBusToken, round, runScript, say } from '../harness.js';
import { startSystem } from '../process/system.js';
import { hopTimings } from './hops.js';
import { FULL, parseOptions, QUICK, USAGE, type Options } from './options.js';
import { runPhases, type Run } from './phases.js';
import { enableProfiler, profilerEnv, summarizeProfiles } from './profiles.js';
import { formatReport } from './report.js';
import { formatReplicasReport } from './replicas-report.js';
import { measureReplicas, stopReplicaRun, type ReplicasResults } from './replicas.js';
import { closeRequests } from './requests.js';
import { buildResults, type Results } from './results.js';
import { now } from './stats.js';

async function main(): Promise<void> {
  const options = optionsOrExit(process.argv.slice(2));
  const began = now();
  const loadBefore = os.loadavg()[0] ?? 0;
  if (options.cpuProfDir) enableProfiler(options.cpuProfDir);
  const run: Run = {
    options,
    settings: options.quick ? QUICK : FULL,
    system: undefined,
    urls: options.urls,
    logLines: [],
    wallSamples: [],
    collecting: false,
    floor: undefined,
  };
  const stopAll = async () => {
    await run.system?.stop();
    await run.floor?.stop();
    await stopReplicaRun();
    closeRequests();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      say(`${signal}: stopping`);
      void stopAll().finally(() => process.exit(130));
    });
  }
  try {
    if (options.replicas) {
      const results = await measureReplicas(options, loadBefore);
      writeResults(options, results, formatReplicasReport(results));
      return;
    }
    await startSystemIfNeeded(run);
    const { measured, subscribers } = await runPhases(run);
    const results = buildResults(options, measured, {
      loadBefore,
      deadLetters: subscribers.deadLetters,
      subscribers: subscribers.subscribers,
      profiles: options.cpuProfDir ? summarizeProfiles(options.cpuProfDir) : null,
      // The log lines come from the services the bench started (not from a system given by URL).
      hops:
        options.hops && measured.latency && run.logLines.length > 0
          ? hopTimings(run.logLines, run.wallSamples)
          : null,
      totalSeconds: round((now() - began) / 1000, 1),
    });
    writeResults(options, results, formatReport(results));
  } finally {
    await stopAll();
  }
}

function optionsOrExit(argv: string[]): Options {
  try {
    return parseOptions(argv);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
}

/** The five services on free ports, unless the run measures given URLs or needs only the start-up phase. */
async function startSystemIfNeeded(run: Run): Promise<void> {
  const { options } = run;
  const phases = options.phases;
  const needsSystem =
    phases.has('latency') || phases.has('rate') || phases.has('throughput') || phases.has('client');
  if (run.urls) {
    const urls = run.urls;
    say(`Measuring the system at ${urls.posts}, ${urls.comments}, ${urls.query}, bus ${urls.bus}`);
    return;
  }
  if (!needsSystem) return;
  const on = options.transport.transport === 'nats' ? ', on NATS JetStream' : '';
  say(`Starting the five services (LOG_LEVEL=${options.logLevel}, a fresh temporary event log${on})...`);
  const system = await startSystem({
    ...options.transport,
    natsNodes: options.natsNodes,
    eventBusToken: eventBusToken(),
    quiet: true,
    host: '127.0.0.1',
    env: { LOG_LEVEL: options.logLevel, ...profilerEnv() },
    // The client phase loads the app through the router, as a browser at localhost:3000 would.
    router: phases.has('client'),
    onStatus: (message) => say(message),
    onLine: options.hops
      ? (service, line) => {
          if (run.collecting) run.logLines.push({ service, line });
        }
      : undefined,
  });
  run.system = system;
  run.urls = {
    posts: system.urls.posts,
    comments: system.urls.comments,
    query: system.urls.query,
    bus: system.urls['event-bus'],
  };
}

/** The JSON to its file, and the report to stdout (to stderr with --json, which prints the JSON instead). */
function writeResults(options: Options, results: Results | ReplicasResults, report: string): void {
  mkdirSync(path.dirname(options.out), { recursive: true });
  writeFileSync(options.out, `${JSON.stringify(results, null, 2)}\n`);
  if (options.json) {
    process.stderr.write(report);
    process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  } else {
    process.stdout.write(report);
  }
  say(`Results written to ${path.relative(process.cwd(), options.out) || options.out}`);
}

runScript('bench', main);
