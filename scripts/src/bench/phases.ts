/**
 * The phases in their order. The throughput phase comes last of those on the running system: its thousands
 * of comments would make every later `GET /posts` large. The start-up phase runs after the system stops.
 */
import { busHeaders, say } from '../harness.js';
import type { System } from '../process/system-types.js';
import { measureClient } from './client-page.js';
import { CpuTally, cpuSnapshot, measuredWithCpu } from './cpu.js';
import { floorThroughput, startFloor, type FloorChain, type FloorResult } from './floor.js';
import type { LogLine } from './hops.js';
import { LatencyRun, measureLatency, type LatencyResult, type WallTimes } from './latency.js';
import { targetsOf, type Options, type Settings, type Urls } from './options.js';
import { measureRate } from './rate.js';
import { measureReplay } from './replay.js';
import { get } from './requests.js';
import type { Measured, WithCpu } from './results.js';
import { measureThroughput } from './throughput.js';

/** A run in progress: the system the bench started (if any), and what `--hops` collects. */
export interface Run {
  options: Options;
  settings: Settings;
  system: System | undefined;
  urls: Urls | undefined;
  /** --hops: the services' log lines during the latency phase, and the bench's own times of each sample. */
  logLines: LogLine[];
  wallSamples: WallTimes[];
  collecting: boolean;
  /** The bare processes of the floor, while the run measures them. */
  floor: FloorChain | undefined;
}

type FloorLatency = FloorResult['latency'];

export interface Subscribers {
  deadLetters: number;
  subscribers: unknown;
}

/** Every phase asked for, in order; stops the system before the start-up phase. */
export async function runPhases(run: Run): Promise<{ measured: Measured; subscribers: Subscribers }> {
  const { options, settings: s, urls } = run;
  const phases = options.phases;
  const measured: Measured = {
    latency: null,
    latencyCold: null,
    latencyPolled: null,
    rate: null,
    throughput: null,
    replay: null,
    client: null,
    floor: null,
  };
  if (urls && (phases.has('latency') || phases.has('throughput'))) {
    say(
      "floor: the comment's exchanges (HTTP, WebSocket) done by bare processes, measured beside each phase",
    );
    run.floor = await startFloor();
    measured.floor = { latency: null, throughput: null };
  }
  if (urls && phases.has('latency')) {
    const { floorLatency, ...system } = await latencyPhase(run, urls);
    Object.assign(measured, system);
    if (measured.floor) measured.floor.latency = floorLatency;
  }
  if (urls && phases.has('rate')) {
    say(`GET /posts rate: ${s.rps.posts} posts with ${s.rps.commentsPerPost} comments each`);
    measured.rate = await measureRate(urls, s.rps);
  }
  // Before throughput too: a page of the rate phase's 500 posts, not of thousands of comments.
  if (phases.has('client')) {
    say(`client: the JavaScript's gzipped size, and ${s.client.loads} page loads in Chromium`);
    measured.client = await measureClient(urls, run.system?.router?.url, s.client);
    if (measured.client.skipped) say(`client: page loads skipped: ${measured.client.skipped}`);
  }
  if (urls && phases.has('throughput')) measured.throughput = await throughputPhase(run, urls);
  if (run.floor && measured.floor && phases.has('throughput')) {
    say(`floor: the throughput phase's writers through the bare processes`);
    measured.floor.throughput = await floorThroughput(run.floor, s.throughput);
  }
  await run.floor?.stop();
  run.floor = undefined;
  const subscribers = urls ? await busSubscribers(urls.bus) : { deadLetters: 0, subscribers: null };
  await run.system?.stop();
  run.system = undefined;
  if (phases.has('replay')) {
    say(`start: query on a log of ${s.replay.events.toLocaleString('en')} events`);
    measured.replay = await measureReplay(s.replay, options.logLevel, options.transport);
  }
  return { measured, subscribers };
}

/**
 * The latency phase. First on the freshly started system, seen pushed (`latencyCold`), then seen by polling
 * `GET /posts` (before the steady part's thousands of comments make that answer large); then the headline:
 * the steady state, beside the floor (`steadyLatency`).
 */
async function latencyPhase(
  run: Run,
  urls: Urls,
): Promise<Pick<Measured, 'latency' | 'latencyCold' | 'latencyPolled'> & { floorLatency: FloorLatency }> {
  const s = run.settings.latency;
  const snapshot = () => cpuSnapshot(run.system);
  const comments = () => s.warmup + s.samples;
  say(`latency: ${s.warmup} warm-up + ${s.samples} comments on the freshly started system, seen pushed`);
  const latencyCold = await measuredWithCpu(
    snapshot,
    () => measureLatency(targetsOf(urls), s, 'push', 0),
    comments,
  );
  say(`latency: ${s.warmup} warm-up + ${s.samples} comments, seen by polling GET /posts`);
  const latencyPolled = await measuredWithCpu(
    snapshot,
    () => measureLatency(targetsOf(urls), s, 'poll', run.options.pollIntervalMs),
    comments,
  );
  const { latency, floorLatency } = await steadyLatency(run, urls, 2 * comments());
  return { latency, latencyCold, latencyPolled, floorLatency };
}

/** Comments in each block of the steady samples, system and floor in turn. */
const LATENCY_BLOCK = 50;

/**
 * The headline latency, seen pushed: once the system and the floor have each taken `steadyAfter`
 * comments (V8 has compiled their hot paths, and the machine runs as it does under steady use; the first
 * thousands of comments after a start are slower, in the floor too), `steadySamples` comments each, system
 * and floor in alternate blocks, so that a change of the machine's speed falls on both alike.
 */
async function steadyLatency(
  run: Run,
  urls: Urls,
  alreadyMade: number,
): Promise<{ latency: WithCpu<LatencyResult>; floorLatency: FloorLatency }> {
  const s = run.settings.latency;
  say(
    `latency: the system and the floor each to ${s.steadyAfter} comments, then ${s.steadySamples} each ` +
      `in alternate blocks of ${LATENCY_BLOCK}, seen pushed`,
  );
  const system = await LatencyRun.open(targetsOf(urls), s, 'push', 0, (sample) => {
    if (run.collecting) run.wallSamples.push(sample);
  });
  const floor = run.floor && (await LatencyRun.open(run.floor.targets, s, 'push', 0));
  const systemCpu = new CpuTally(() => cpuSnapshot(run.system));
  const floorCpu = run.floor && new CpuTally(run.floor.cpu);
  try {
    await system.comments(Math.max(0, s.steadyAfter - alreadyMade), { counted: false });
    await floor?.comments(s.steadyAfter, { counted: false });
    for (let done = 0; done < s.steadySamples; done += LATENCY_BLOCK) {
      const count = Math.min(LATENCY_BLOCK, s.steadySamples - done);
      run.collecting = run.options.hops;
      await systemCpu.during(() => system.comments(count));
      run.collecting = false;
      if (floor && floorCpu) await floorCpu.during(() => floor.comments(count));
    }
  } finally {
    system.close();
    floor?.close();
  }
  // Their notes say how many comments came before the samples.
  const steady = (result: LatencyResult, cpu: CpuTally) => ({
    ...result,
    settings: { ...result.settings, warmup: s.steadyAfter, samples: s.steadySamples },
    cpuMsPerComment: cpu.perComment(s.steadySamples),
  });
  return {
    latency: steady(system.result(), systemCpu),
    floorLatency: floor && floorCpu ? steady(floor.result(), floorCpu) : null,
  };
}

async function throughputPhase(run: Run, urls: Urls): Promise<Measured['throughput']> {
  const s = run.settings.throughput;
  say(`throughput: ${s.writers} writers on ${s.posts} posts for ${s.durationMs / 1000} s`);
  return measuredWithCpu(
    () => cpuSnapshot(run.system),
    () => measureThroughput(targetsOf(urls), s),
    (result) => result.final,
  );
}

/** The bus's view of its subscribers, and the dead letters among them. */
async function busSubscribers(busUrl: string): Promise<Subscribers> {
  try {
    const reply = await get(`${busUrl}/subscribers`, { headers: busHeaders() });
    if (reply.status !== 200) return { deadLetters: 0, subscribers: null };
    const subscribers = JSON.parse(reply.body) as { deadLetters?: number }[];
    return { deadLetters: subscribers.reduce((sum, s) => sum + (s.deadLetters ?? 0), 0), subscribers };
  } catch {
    return { deadLetters: 0, subscribers: null }; // a course-original bus has no /subscribers
  }
}
