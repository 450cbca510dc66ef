/**
 * The floor: what the comment's way costs on this machine with nothing on top of `node:http` and `ws`,
 * measured in the same run and by the same harness as the system (latency.ts, throughput.ts). Four bare
 * processes (floor-chain.ts) make the same exchanges as the system on the HTTP bus, on the same wire and in
 * the same pattern: the POST to comments (HTTP), then the publish and each delivery to a subscriber that
 * acts on the event, each reaction in the answer to its delivery, over one WebSocket per (client, server)
 * pair; and query's pushes on its live stream. The system's figure over the floor's is what the system
 * costs above the network.
 */
import { fileURLToPath } from 'node:url';
import { describeExit, ManagedProcess } from '@blog/common/process';
import { say } from '../harness.js';
import { freePorts } from '../process/ports.js';
import { cpuSnapshot, measuredWithCpu } from './cpu.js';
import { FLOOR_PARTS, FLOOR_SUBSCRIBERS, type FloorConfig, type FloorPart } from './floor-chain.js';
import type { LatencyResult } from './latency.js';
import type { Settings, Targets } from './options.js';
import type { WithCpu } from './results.js';
import { measureThroughput, type ThroughputResult } from './throughput.js';

const chainFile = fileURLToPath(new URL('./floor-chain.js', import.meta.url));

/** What the floor measured: each phase with the CPU each bare process used per comment. */
export interface FloorResult {
  latency: WithCpu<LatencyResult> | null;
  throughput: WithCpu<ThroughputResult> | null;
}

export interface FloorChain {
  targets: Targets;
  /** The CPU time of each bare process, by the name of the service it stands for. */
  cpu(): Record<string, number>;
  stop(): Promise<void>;
}

/** The four bare processes on free ports of 127.0.0.1, each answering before this resolves. */
export async function startFloor(): Promise<FloorChain> {
  const ports = await freePorts(FLOOR_PARTS.length);
  const urls = Object.fromEntries(
    FLOOR_PARTS.map((part, i) => [part, `http://127.0.0.1:${ports[i]}`]),
  ) as Record<FloorPart, string>;
  const configs: FloorConfig[] = FLOOR_PARTS.map((part, i) => ({
    part,
    port: ports[i]!,
    busUrl: urls['event-bus'],
    subscribers: Object.keys(FLOOR_SUBSCRIBERS).map((name) => ({ name, url: urls[name as FloorPart] })),
  }));
  const processes = configs.map(
    (config) =>
      new ManagedProcess({
        name: `floor ${config.part}`,
        command: process.execPath,
        args: [chainFile, JSON.stringify(config)],
        ready: `${urls[config.part]}/readyz`,
        readyTimeoutMs: 30_000,
        stopTimeoutMs: 5000,
        logLines: 50,
        // A bare process writes only its failures: each one shows in the bench's progress.
        onLine: (line) => say(`floor ${config.part}: ${line}`),
        onExit: (exit, unexpected) => {
          if (unexpected) say(`floor ${config.part} exited: ${describeExit(exit)}`);
        },
      }),
  );
  const stop = async () => {
    await Promise.all(processes.map((p) => p.stop()));
  };
  try {
    await Promise.all(processes.map((p) => p.start()));
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    // Set-up requests (`POST /posts/create`) go to the floor's comments: the floor has no posts.
    targets: { posts: [urls.comments], comments: [urls.comments], query: [urls.query] },
    cpu: () => cpuSnapshot(undefined, Object.fromEntries(processes.map((p, i) => [FLOOR_PARTS[i], p.pid]))),
    stop,
  };
}

/** The throughput phase's writers, through the floor: the rate the comment's way allows on this machine. */
export function floorThroughput(
  floor: FloorChain,
  settings: Settings['throughput'],
): Promise<WithCpu<ThroughputResult>> {
  return measuredWithCpu(
    () => floor.cpu(),
    () => measureThroughput(floor.targets, settings),
    (result) => result.final,
  );
}
