/** The results of a run, as written to JSON: the headline figures, the error counts and every detail. */
import os from 'node:os';
import { round } from '../harness.js';
import type { ClientResult } from './client-page.js';
import type { FloorResult } from './floor.js';
import type { HopTiming } from './hops.js';
import type { LatencyResult } from './latency.js';
import { COURSE, TARGETS, type Options, type Phase } from './options.js';
import type { ProfileSummary } from './profiles.js';
import type { RateResult } from './rate.js';
import type { ReplayResult } from './replay.js';
import type { ThroughputResult } from './throughput.js';

/** A phase's result with the CPU time each process spent per comment (null: not known). */
export type WithCpu<T> = T & { cpuMsPerComment: Record<string, number> | null };

/** What the phases measured (null: phase not run). */
export interface Measured {
  /** Seen pushed, in the steady state: the headline. */
  latency: WithCpu<LatencyResult> | null;
  /** Seen pushed, on the freshly started system (its first comments after `warmup`). */
  latencyCold: WithCpu<LatencyResult> | null;
  latencyPolled: WithCpu<LatencyResult> | null;
  rate: RateResult | null;
  throughput: WithCpu<ThroughputResult> | null;
  replay: ReplayResult | null;
  client: ClientResult | null;
  /** The same latency and throughput phases through bare processes (floor.ts). */
  floor: FloorResult | null;
}

export type Figures = {
  /** Seen pushed by query, from sending the POST: the headline latency. */
  latencyFromPostP50Ms: number;
  latencyFromPostP99Ms: number;
  /** The same through the floor, and the system's figure over the floor's. */
  floorLatencyP50Ms: number;
  floorLatencyP99Ms: number;
  latencyP50ToFloor: number;
  latencyP99ToFloor: number;
  /** The same on the freshly started system (its first comments, before the JIT has compiled the path). */
  latencyColdFromPostP50Ms: number;
  latencyColdFromPostP99Ms: number;
  /** From the 201 (a detail now: the time after the POST's answer). */
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  latencyPolledP50Ms: number;
  latencyPolledP99Ms: number;
  throughputPerSec: number;
  floorPerSec: number;
  throughputToFloor: number;
  /**
   * CPU ms per comment of the system's processes together (every one but the bench, the client), in the
   * throughput phase and the latency phase; then of every process, the bench's included.
   */
  cpuMsPerComment: number;
  floorCpuMsPerComment: number;
  cpuToFloor: number;
  latencyCpuMsPerComment: number;
  floorLatencyCpuMsPerComment: number;
  cpuWithBenchMsPerComment: number;
  floorCpuWithBenchMsPerComment: number;
  queryRps: number;
  bareRps: number;
  queryToBareRatio: number;
  readyMs: number;
  clientJsGzipKb: number;
  clientLoadMs: number;
};

export interface Results {
  date: string;
  command: string;
  mode: 'full' | 'quick';
  machine: {
    cpus: number;
    cpuModel: string;
    memoryGB: number;
    node: string;
    platform: string;
    /** 1-minute load average before and after the run: others' work on the machine skews every figure. */
    loadBefore: number;
    loadAfter: number;
  };
  system: string;
  /** How the services exchanged events: `http` (the event-bus) or `nats` (NATS JetStream). */
  transport: string;
  logLevel: string;
  phases: Phase[];
  /** The headline figures: every one a finite positive number when the run succeeded (null: phase not run). */
  figures: { [K in keyof Figures]: number | null };
  /** Counts that should be 0. */
  errors: {
    throughputNon201: number;
    throughputNotFinal: number;
    latencyWrongStatus: number;
    queryNon2xx: number;
    bareNon2xx: number;
    replayNotVerified: number;
    deadLetters: number;
    /** The floor's own: non-201 answers, comments not final, wrong statuses. */
    floorErrors: number;
  };
  targets: typeof TARGETS;
  course: typeof COURSE;
  details: Measured & {
    subscribers: unknown;
    profiles: ProfileSummary[] | null;
    hops: HopTiming[] | null;
    totalSeconds: number;
  };
}

/** The rest of a run's results: the bus's subscribers, the profiles, the hops, and the run's own facts. */
export interface RunFacts {
  loadBefore: number;
  deadLetters: number;
  subscribers: unknown;
  profiles: ProfileSummary[] | null;
  hops: HopTiming[] | null;
  totalSeconds: number;
}

export function buildResults(options: Options, measured: Measured, facts: RunFacts): Results {
  return {
    ...runFacts(options, facts.loadBefore),
    system: options.urls ? 'given URLs' : 'started by the bench (scripts/src/process/system.ts)',
    transport: options.urls ? 'as configured' : (options.transport.transport ?? 'http'),
    logLevel: options.urls ? 'as configured' : options.logLevel,
    phases: [...options.phases],
    figures: figuresOf(measured),
    errors: errorsOf(measured, facts.deadLetters),
    targets: TARGETS,
    course: COURSE,
    details: {
      ...measured,
      subscribers: facts.subscribers,
      profiles: facts.profiles,
      hops: facts.hops,
      totalSeconds: facts.totalSeconds,
    },
  };
}

/** When, how and on what a run ran: the first keys of every results file. */
export function runFacts(
  options: Options,
  loadBefore: number,
): Pick<Results, 'date' | 'command' | 'mode' | 'machine'> {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    command: ['node scripts/dist/bench/main.js', ...process.argv.slice(2)].join(' '),
    mode: options.quick ? 'quick' : 'full',
    machine: {
      cpus: cpus.length,
      cpuModel: cpus[0]?.model.trim() ?? 'unknown',
      memoryGB: round(os.totalmem() / 2 ** 30, 1),
      node: process.version,
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      loadBefore: round(loadBefore, 2),
      loadAfter: round(os.loadavg()[0] ?? 0, 2),
    },
  };
}

function figuresOf(measured: Measured): Results['figures'] {
  const { latency, latencyCold, latencyPolled, throughput, rate, replay, client } = measured;
  return {
    ...headlineFigures(measured),
    latencyColdFromPostP50Ms: latencyCold?.fromRequestMs.p50 ?? null,
    latencyColdFromPostP99Ms: latencyCold?.fromRequestMs.p99 ?? null,
    latencyP50Ms: latency?.afterCreatedMs.p50 ?? null,
    latencyP99Ms: latency?.afterCreatedMs.p99 ?? null,
    latencyMaxMs: latency?.afterCreatedMs.max ?? null,
    latencyPolledP50Ms: latencyPolled?.afterCreatedMs.p50 ?? null,
    latencyPolledP99Ms: latencyPolled?.afterCreatedMs.p99 ?? null,
    throughputPerSec: throughput?.perSecond ?? null,
    queryRps: rate?.query.rps ?? null,
    bareRps: rate?.bare.rps ?? null,
    queryToBareRatio: rate?.ratio ?? null,
    readyMs: replay?.readyMs ?? null,
    clientJsGzipKb: client?.jsGzipKb ?? null,
    clientLoadMs: client?.loadMedianMs ?? null,
  };
}

/** The system over the floor (null when either is unknown). */
const toFloor = (system: number | undefined, floor: number | undefined) =>
  system === undefined || floor === undefined || floor <= 0 ? null : round(system / floor, 2);

/** The figures from the user's side, the floor's beside them, and the CPU per comment. */
function headlineFigures({ latency, throughput, floor }: Measured) {
  const sent = latency?.fromRequestMs;
  const floorSent = floor?.latency?.fromRequestMs;
  const cpu = throughput?.cpuMsPerComment?.system;
  const floorCpu = floor?.throughput?.cpuMsPerComment?.system;
  return {
    latencyFromPostP50Ms: sent?.p50 ?? null,
    latencyFromPostP99Ms: sent?.p99 ?? null,
    floorLatencyP50Ms: floorSent?.p50 ?? null,
    floorLatencyP99Ms: floorSent?.p99 ?? null,
    latencyP50ToFloor: toFloor(sent?.p50, floorSent?.p50),
    latencyP99ToFloor: toFloor(sent?.p99, floorSent?.p99),
    floorPerSec: floor?.throughput?.perSecond ?? null,
    throughputToFloor: toFloor(throughput?.perSecond, floor?.throughput?.perSecond),
    cpuMsPerComment: cpu ?? null,
    floorCpuMsPerComment: floorCpu ?? null,
    cpuToFloor: toFloor(cpu, floorCpu),
    latencyCpuMsPerComment: latency?.cpuMsPerComment?.system ?? null,
    floorLatencyCpuMsPerComment: floor?.latency?.cpuMsPerComment?.system ?? null,
    cpuWithBenchMsPerComment: throughput?.cpuMsPerComment?.total ?? null,
    floorCpuWithBenchMsPerComment: floor?.throughput?.cpuMsPerComment?.total ?? null,
  };
}

function errorsOf(
  { latency, latencyCold, latencyPolled, throughput, rate, replay, floor }: Measured,
  deadLetters: number,
): Results['errors'] {
  return {
    throughputNon201: throughput?.errorCount ?? 0,
    throughputNotFinal: throughput ? Math.max(0, throughput.created - throughput.final) : 0,
    latencyWrongStatus:
      (latency?.wrongStatus ?? 0) + (latencyCold?.wrongStatus ?? 0) + (latencyPolled?.wrongStatus ?? 0),
    queryNon2xx: rate ? rate.query.non2xx + rate.query.errors : 0,
    bareNon2xx: rate ? rate.bare.non2xx + rate.bare.errors : 0,
    replayNotVerified: replay && !(replay.verified && replay.restart.verified) ? 1 : 0,
    deadLetters,
    floorErrors:
      (floor?.latency?.wrongStatus ?? 0) +
      (floor?.throughput
        ? floor.throughput.errorCount + Math.max(0, floor.throughput.created - floor.throughput.final)
        : 0),
  };
}
