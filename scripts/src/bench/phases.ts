/**
 * The phases in their order. The throughput phase comes last of those on the running system: its thousands
 * of comments would make every later `GET /posts` large. The start-up phase runs after the system stops.
 */
import { busHeaders, say } from '../harness.js';
import type { System } from '../process/system-types.js';
import { measureClient } from './client-page.js';
import { cpuSnapshot, measuredWithCpu } from './cpu.js';
import { floorLatency, floorThroughput, startFloor, type FloorChain } from './floor.js';
import type { LogLine } from './hops.js';
import { measureLatency, type WallTimes } from './latency.js';
import { targetsOf, type Options, type Settings, type Urls } from './options.js';
import { measureRate } from './rate.js';
import { measureReplay } from './replay.js';
import { get } from './requests.js';
import type { Measured } from './results.js';
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
    Object.assign(measured, await latencyPhase(run, urls));
    if (run.floor && measured.floor) {
      say(`floor: the latency phase's comments through the bare processes, seen pushed`);
      measured.floor.latency = await floorLatency(run.floor, s.latency);
    }
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

/** Latency twice: seen pushed by query's live stream, then seen by polling `GET /posts`. */
async function latencyPhase(run: Run, urls: Urls): Promise<Pick<Measured, 'latency' | 'latencyPolled'>> {
  const s = run.settings.latency;
  const snapshot = () => cpuSnapshot(run.system);
  const comments = () => s.warmup + s.samples;
  say(`latency: ${s.warmup} warm-up + ${s.samples} comments, one at a time, seen pushed`);
  run.collecting = run.options.hops;
  const latency = await measuredWithCpu(
    snapshot,
    () => measureLatency(targetsOf(urls), s, 'push', 0, (sample) => run.wallSamples.push(sample)),
    comments,
  );
  run.collecting = false;
  say(`latency: the same again, seen by polling GET /posts`);
  const latencyPolled = await measuredWithCpu(
    snapshot,
    () => measureLatency(targetsOf(urls), s, 'poll', run.options.pollIntervalMs),
    comments,
  );
  return { latency, latencyPolled };
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
