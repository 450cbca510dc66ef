import { existsSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { scriptPath } from '../../../test/support/scripts.js';

/**
 * The floor's bare processes, built (`npm test` builds first: each runs `floor-chain.js` from dist/), driven
 * by the bench's own harness: every comment comes back final with moderation's status, on the live stream
 * one at a time and in `GET /posts` under concurrent writers, and each process's CPU is read.
 */
type FloorModule = typeof import('./floor.js');
type LatencyModule = typeof import('./latency.js');
type CpuModule = typeof import('./cpu.js');

let floorModule: FloorModule;
let latencyModule: LatencyModule;
let cpuModule: CpuModule;
let floor: Awaited<ReturnType<FloorModule['startFloor']>>;

beforeAll(async () => {
  const built = scriptPath('bench/floor');
  expect(existsSync(built), 'scripts/dist/bench/floor.js is missing: run `npm run build` first').toBe(true);
  floorModule = (await import(pathToFileURL(built).href)) as FloorModule;
  latencyModule = (await import(pathToFileURL(scriptPath('bench/latency')).href)) as LatencyModule;
  cpuModule = (await import(pathToFileURL(scriptPath('bench/cpu')).href)) as CpuModule;
  floor = await floorModule.startFloor();
});

afterAll(async () => {
  await floor?.stop();
});

describe('the floor of the bench', () => {
  it('carries each comment, one at a time, to its final status on the live stream', async () => {
    const settings = {
      warmup: 2,
      samples: 10,
      steadyAfter: 2,
      steadySamples: 10,
      commentsPerPost: 5,
      everyNthOrange: 3,
    };
    // As the latency phase drives it: a warm-up, then the samples in blocks, the CPU summed over them.
    const run = await latencyModule.LatencyRun.open(floor.targets, settings, 'push', 0);
    const tally = new cpuModule.CpuTally(floor.cpu);
    try {
      await run.comments(2, { counted: false });
      await tally.during(() => run.comments(5));
      await tally.during(() => run.comments(5));
    } finally {
      run.close();
    }
    const result = { ...run.result(), cpuMsPerComment: tally.perComment(10) };
    expect(result.wrongStatus).toBe(0);
    expect(result.fromRequestMs.count).toBe(10);
    expect(result.fromRequestMs.p50).toBeGreaterThan(0);
    expect(result.fromRequestMs.p50).toBeGreaterThanOrEqual(result.createMs.p50);
    const cpu = result.cpuMsPerComment!;
    for (const name of ['comments', 'event-bus', 'moderation', 'query', 'bench'])
      expect(cpu[name], name).toBeGreaterThanOrEqual(0);
    expect(cpu.total).toBeGreaterThan(0);
    // The system's share is every process but the bench's own.
    expect(cpu.system).toBeCloseTo(cpu.total! - cpu.bench!, 1);
  });

  it('takes concurrent writers, every comment final in GET /posts', async () => {
    const settings = { writers: 4, posts: 3, durationMs: 500, drainTimeoutMs: 10_000 };
    const result = await floorModule.floorThroughput(floor, settings);
    expect(result.errorCount).toBe(0);
    expect(result.created).toBeGreaterThan(0);
    expect(result.final).toBe(result.created);
    expect(result.complete).toBe(true);
    expect(result.perSecond).toBeGreaterThan(0);
  });
});
