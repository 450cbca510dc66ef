/**
 * `--replicas 1,2`: what more processes of each service buy on NATS, and what limits them. One set of
 * nats-servers (a JetStream cluster with --nats-nodes above 1) serves the whole run; for each replica count
 * in turn, a system of that many processes of posts, comments, query and moderation (one gateway) on a
 * fresh stream, the latency phase and the throughput phase with writes spread over the replicas, and the
 * CPU time of every process, summed by service. Every count is measured in the same run on the same
 * servers, so that the machine's other load weighs on each alike.
 */
import { startNatsCluster } from '@blog/common/nats-cluster';
import { startNatsServer, type NatsServer } from '@blog/common/nats-server';
import os from 'node:os';
import { eventBusToken, round, say } from '../harness.js';
import { startSystem } from '../process/system.js';
import type { System } from '../process/system-types.js';
import { cpuSnapshot, cpuUsedByService } from './cpu.js';
import { measureLatency, type LatencyResult } from './latency.js';
import { FULL, QUICK, type Options, type Settings, type Targets } from './options.js';
import { runFacts, type Results } from './results.js';
import { now } from './stats.js';
import { measureThroughput, type ThroughputResult } from './throughput.js';

/** Where a phase's CPU time went, by process kind. */
export interface CpuUse {
  /** CPU milliseconds per comment: each service (its replicas summed), the nats-servers, the bench, total. */
  msPerComment: Record<string, number>;
  /** Each one's share of all the CPU time used during the phase, in percent. */
  sharePercent: Record<string, number>;
  /** All that CPU time over the phase's wall time × the machine's cores: 1 when it kept every core busy. */
  coresBusy: number;
}

export type WithCpuUse<T> = T & { cpu: CpuUse };

export interface ReplicaCountResult {
  /** Processes of each of posts, comments, query and moderation. */
  replicas: number;
  stream: string;
  /** Seen pushed by each query replica in turn, from sending the POST (`fromRequestMs`). */
  latency: WithCpuUse<LatencyResult>;
  /** Final in every query replica. */
  throughput: WithCpuUse<ThroughputResult>;
  /** Counts that should be 0. */
  errors: { throughputNon201: number; throughputNotFinal: number; latencyWrongStatus: number };
}

export interface ReplicasResults extends Pick<Results, 'date' | 'command' | 'mode' | 'machine'> {
  transport: 'nats';
  /** nats-servers in the cluster, and how many of them keep the stream (NATS_REPLICAS). */
  natsNodes: number;
  streamReplicas: number;
  logLevel: string;
  runs: ReplicaCountResult[];
  totalSeconds: number;
}

/** The servers of the run, and the system of the count being measured: what a signal must stop. */
const running: { servers?: NatsServers; system?: System } = {};

interface NatsServers {
  url: string;
  nodes: readonly NatsServer[];
  stop(): Promise<void>;
}

/** Every replica count of `options.replicas` in turn, on one set of nats-servers. */
export async function measureReplicas(options: Options, loadBefore: number): Promise<ReplicasResults> {
  const began = now();
  // The standard sizes of the latency and throughput phases.
  const settings = options.quick ? QUICK : FULL;
  const natsNodes = options.natsNodes;
  const streamReplicas = Math.min(3, natsNodes);
  const on = natsNodes > 1 ? `a JetStream cluster of ${natsNodes} nats-servers` : 'one nats-server';
  say(`Starting ${on}...`);
  const servers = await startNatsServers(natsNodes, eventBusToken());
  running.servers = servers;
  const runs: ReplicaCountResult[] = [];
  try {
    for (const replicas of options.replicas ?? []) {
      runs.push(await measureCount(options, settings, { servers, replicas, streamReplicas }));
    }
  } finally {
    await stopReplicaRun();
  }
  return {
    ...runFacts(options, loadBefore),
    transport: 'nats',
    natsNodes,
    streamReplicas,
    logLevel: options.logLevel,
    runs,
    totalSeconds: round((now() - began) / 1000, 1),
  };
}

/** Stops what the replica run started (safe to call twice). */
export async function stopReplicaRun(): Promise<void> {
  const { system, servers } = running;
  running.system = undefined;
  running.servers = undefined;
  await system?.stop();
  await servers?.stop();
}

async function measureCount(
  options: Options,
  settings: Settings,
  run: { servers: NatsServers; replicas: number; streamReplicas: number },
): Promise<ReplicaCountResult> {
  const { servers, replicas } = run;
  say(`${replicas} replica(s) of each service, on a fresh stream:`);
  const system = await startSystem({
    transport: 'nats',
    natsUrl: servers.url,
    replicas,
    eventBusToken: eventBusToken(),
    quiet: true,
    host: '127.0.0.1',
    env: { LOG_LEVEL: options.logLevel, NATS_REPLICAS: String(run.streamReplicas) },
    onStatus: (message) => say(message),
  });
  running.system = system;
  try {
    const targets: Targets = {
      posts: system.replicas.posts.map((r) => r.url),
      comments: system.replicas.comments.map((r) => r.url),
      query: system.replicas.query.map((r) => r.url),
    };
    const natsPids = () => Object.fromEntries(servers.nodes.map((node, i) => [`nats-${i}`, node.pid]));
    const cpuOf = <T>(measure: () => Promise<T>, comments: (result: T) => number) =>
      withCpu(measure, () => cpuSnapshot(system, natsPids()), comments);
    const l = settings.latency;
    say(`  latency: ${l.warmup} warm-up + ${l.samples} comments, one at a time, seen pushed`);
    const latency = await cpuOf(
      () => measureLatency(targets, l, 'push', 0),
      () => l.warmup + l.samples,
    );
    const t = settings.throughput;
    say(`  throughput: ${t.writers} writers on ${t.posts} posts for ${t.durationMs / 1000} s`);
    const throughput = await cpuOf(
      () => measureThroughput(targets, t),
      (result) => result.final,
    );
    return {
      replicas,
      stream: system.nats?.stream ?? '',
      latency,
      throughput,
      errors: {
        throughputNon201: throughput.errorCount,
        throughputNotFinal: Math.max(0, throughput.created - throughput.final),
        latencyWrongStatus: latency.wrongStatus,
      },
    };
  } finally {
    running.system = undefined;
    await system.stop();
  }
}

/** Runs `measure`, and says where the CPU time went meanwhile, per comment and as shares. */
async function withCpu<T>(
  measure: () => Promise<T>,
  snapshot: () => Record<string, number>,
  comments: (result: T) => number,
): Promise<WithCpuUse<T>> {
  const before = snapshot();
  const started = now();
  const result = await measure();
  const wallMs = now() - started;
  const used = cpuUsedByService(before, snapshot());
  const total = Object.values(used).reduce((sum, ms) => sum + ms, 0);
  const count = Math.max(1, comments(result));
  const msPerComment: Record<string, number> = {};
  const sharePercent: Record<string, number> = {};
  for (const [name, ms] of Object.entries(used)) {
    msPerComment[name] = round(ms / count, 3);
    sharePercent[name] = total > 0 ? round((100 * ms) / total, 1) : 0;
  }
  msPerComment.total = round(total / count, 3);
  const coresBusy = round(total / (wallMs * os.cpus().length), 2);
  return { ...result, cpu: { msPerComment, sharePercent, coresBusy } };
}

/** A cluster of `nodes` nats-servers (one server for 1), with the system's token. */
async function startNatsServers(nodes: number, token: string | undefined): Promise<NatsServers> {
  if (nodes > 1) {
    const cluster = await startNatsCluster({ nodes, token });
    return { url: cluster.url, nodes: cluster.nodes, stop: () => cluster.stop() };
  }
  const server = await startNatsServer({ token });
  return { url: server.url, nodes: [server], stop: () => server.stop() };
}
