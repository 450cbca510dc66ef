import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { natsAvailability } from '@blog/common/testing';
import { afterAll, describe, expect, it } from 'vitest';
import { runScript, scriptPath, type ScriptRun } from '../../test/support/scripts.js';
import { chromiumMissing } from './browser.js';

/**
 * The benchmark end to end, in its quick form, as a child process on the built services (`npm test` builds
 * first): it must produce every figure as a finite positive number. No thresholds: a shared 2-core machine
 * is too noisy for them, and `npm run bench` is where speed is judged (docs/performance.md).
 */
const outDir = mkdtempSync(path.join(os.tmpdir(), 'blog-bench-test-'));

afterAll(() => rmSync(outDir, { recursive: true, force: true }));

const runQuickBench = (out: string, extra: string[] = []): Promise<ScriptRun> =>
  runScript('bench/main', ['--quick', '--json', '--out', out, ...extra], { timeoutMs: 290_000 });

describe('npm run bench -- --quick', () => {
  it('measures every figure end to end on real processes', { timeout: 300_000 }, async () => {
    expect(
      existsSync(scriptPath('bench/main')),
      'scripts/dist/bench/main.js is missing: run `npm run build` first',
    ).toBe(true);
    const out = path.join(outDir, 'results.json');
    const { code, stdout, stderr } = await runQuickBench(out);
    expect(code, `the bench failed:\n${stderr.slice(-3000)}`).toBe(0);

    const results = JSON.parse(stdout) as {
      mode: string;
      machine: { cpus: number; node: string };
      figures: Record<string, unknown>;
      errors: Record<string, unknown>;
      details: {
        replay: { verified: boolean; codeCache: boolean; restart: { verified: boolean; codeCache: boolean } };
        client: { skipped: string | null; loadsMs: number[] };
        latency: { fromRequestMs: { count: number }; settings: { warmup: number } };
        latencyCold: { fromRequestMs: { count: number } };
        floor: { latency: { fromRequestMs: { count: number } } };
      };
    };
    expect(results.mode).toBe('quick');
    // The headline samples come after the warm-up to the steady state, as many for the floor, measured in
    // turns; the freshly started system's are a detail.
    expect(results.details.latency.fromRequestMs.count).toBe(40);
    expect(results.details.latency.settings.warmup).toBe(100);
    expect(results.details.floor.latency.fromRequestMs.count).toBe(40);
    expect(results.details.latencyCold.fromRequestMs.count).toBe(40);
    expect(results.machine.cpus).toBeGreaterThan(0);
    expect(results.machine.node).toBe(process.version);

    const names = [
      'latencyFromPostP50Ms',
      'latencyFromPostP99Ms',
      'floorLatencyP50Ms',
      'floorLatencyP99Ms',
      'latencyP50ToFloor',
      'latencyP99ToFloor',
      'latencyColdFromPostP50Ms',
      'latencyColdFromPostP99Ms',
      'floorPerSec',
      'throughputToFloor',
      'cpuMsPerComment',
      'floorCpuMsPerComment',
      'cpuToFloor',
      'latencyCpuMsPerComment',
      'floorLatencyCpuMsPerComment',
      'cpuWithBenchMsPerComment',
      'floorCpuWithBenchMsPerComment',
      'latencyP50Ms',
      'latencyP99Ms',
      'latencyMaxMs',
      'latencyPolledP50Ms',
      'latencyPolledP99Ms',
      'throughputPerSec',
      'queryRps',
      'bareRps',
      'queryToBareRatio',
      'readyMs',
      'clientJsGzipKb',
      'clientLoadMs',
    ];
    expect(Object.keys(results.figures).sort()).toEqual([...names].sort());
    // Without Chromium the page loads are skipped, and say why (CI installs it, so there they run).
    const noBrowser = chromiumMissing();
    if (noBrowser) {
      expect(results.figures.clientLoadMs).toBeNull();
      expect(results.details.client.skipped).toBe(noBrowser);
      names.splice(names.indexOf('clientLoadMs'), 1);
    } else {
      expect(results.details.client.loadsMs).toHaveLength(3);
    }
    for (const name of names) {
      const value = results.figures[name];
      expect(typeof value, name).toBe('number');
      expect(Number.isFinite(value), name).toBe(true);
      expect(value as number, name).toBeGreaterThan(0);
    }
    // Correctness, not speed: every comment got its status, nothing failed, query served the whole log.
    for (const [name, count] of Object.entries(results.errors)) expect(count, name).toBe(0);
    expect(results.details.replay.verified).toBe(true);
    // query's first start has no code cache (the bench removes it); the first start writes one as it stops,
    // and the restart takes it.
    expect(results.details.replay).toMatchObject({
      codeCache: false,
      restart: { verified: true, codeCache: true },
    });
    expect(stderr).toMatch(/\| detail: query restarted, with the code cache of its first start/);

    // The floor ran beside the system, through the same harness, and every comment came back final.
    expect(results.errors.floorErrors).toBe(0);

    // The table goes to stderr with --json, and the same JSON to the file; it leads with the figures
    // from sending the POST, the floor beside them.
    expect(stderr).toContain('| figure');
    expect(stderr).toContain('floor (bare processes)');
    expect(stderr).toMatch(/\| latency p50, POST sent → final status pushed by query/);
    expect(stderr).toMatch(/\| detail: freshly started \(comments 6–45\)/);
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(results);
  });
});

// The start-up phase on nats builds its log in a JetStream stream on a nats-server of its own.
describe.skipIf(natsAvailability({ needs: 'binary' }).skip)('npm run bench -- --transport nats', () => {
  it("measures query's start on a JetStream stream", { timeout: 180_000 }, async () => {
    const out = path.join(outDir, 'results-nats.json');
    const { code, stdout, stderr } = await runQuickBench(out, ['--only', 'replay', '--transport', 'nats']);
    expect(code, `the bench failed:\n${stderr.slice(-3000)}`).toBe(0);
    const results = JSON.parse(stdout) as {
      transport: string;
      figures: { readyMs: number };
      details: { replay: { events: number; verified: boolean; databaseBytes: number } };
    };
    expect(results.transport).toBe('nats');
    expect(results.details.replay).toMatchObject({ events: 10_000, verified: true });
    expect(results.details.replay.databaseBytes).toBeGreaterThan(0);
    expect(results.figures.readyMs).toBeGreaterThan(0);
    expect(stderr).toContain('MiB of JetStream store');
  });
});

// Replicas on a JetStream cluster: each replica count in turn, its writes spread over the replicas.
describe.skipIf(natsAvailability({ needs: 'binary' }).skip)(
  'npm run bench -- --transport nats --nats-nodes 3 --replicas 1,2',
  () => {
    it(
      'measures latency, throughput and CPU for 1 and 2 replicas on one cluster',
      { timeout: 240_000 },
      async () => {
        const out = path.join(outDir, 'results-replicas.json');
        const { code, stdout, stderr } = await runQuickBench(out, [
          '--transport',
          'nats',
          '--nats-nodes',
          '3',
          '--replicas',
          '1,2',
        ]);
        expect(code, `the bench failed:\n${stderr.slice(-3000)}`).toBe(0);
        const results = JSON.parse(stdout) as {
          natsNodes: number;
          streamReplicas: number;
          runs: {
            replicas: number;
            stream: string;
            latency: { fromRequestMs: { count: number; p50: number; p99: number } };
            throughput: {
              perSecond: number;
              complete: boolean;
              cpu: { msPerComment: Record<string, number> };
            };
            errors: Record<string, number>;
          }[];
        };
        expect(results).toMatchObject({ natsNodes: 3, streamReplicas: 3 });
        expect(results.runs.map((run) => run.replicas)).toEqual([1, 2]);
        expect(new Set(results.runs.map((run) => run.stream)).size).toBe(2);
        for (const run of results.runs) {
          expect(run.latency.fromRequestMs.count).toBe(40);
          expect(run.latency.fromRequestMs.p50).toBeGreaterThan(0);
          expect(run.throughput.perSecond).toBeGreaterThan(0);
          expect(run.throughput.complete).toBe(true);
          for (const [name, count] of Object.entries(run.errors)) expect(count, name).toBe(0);
          // Every kind of process was measured, the replicas summed per service (CPU time comes in 10 ms
          // ticks: a process that did little in a short phase may show none).
          const cpu = run.throughput.cpu.msPerComment;
          for (const name of [
            'posts',
            'comments',
            'query',
            'moderation',
            'event-bus',
            'nats-server',
            'bench',
          ])
            expect(cpu[name], name).toBeGreaterThanOrEqual(0);
          expect(cpu.total).toBeGreaterThan(0);
          expect(Object.keys(cpu).some((name) => /-\d+$/.test(name))).toBe(false);
        }
        expect(stderr).toContain('| replicas of each service');
      },
    );
  },
);
