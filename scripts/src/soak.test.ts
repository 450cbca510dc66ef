import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { runScript, scriptPath } from '../../test/support/scripts.js';

/**
 * `npm run soak`, short, as a child process on the built services: no request may fail, and every figure
 * (per-interval percentiles, each service's RSS, the growth verdict) must be there. No thresholds on speed
 * or memory: 10 s on a shared machine says nothing about either; the full run is in docs/reliability.md.
 */

interface SoakResults {
  requests: number;
  errors: number;
  intervals: { requests: number; p50Ms: number; p99Ms: number; rssMiB: Record<string, number | null> }[];
  latency: { p50Ms: number; p90Ms: number; p99Ms: number; maxMs: number };
  memory: Record<string, { startMiB: number | null; endMiB: number | null; verdict: string }>;
}

describe('npm run soak, short', () => {
  it(
    'carries a steady mix for 10 s without an error, and reports latency and memory',
    { timeout: 180_000 },
    async () => {
      expect(
        existsSync(scriptPath('soak')),
        'scripts/dist/soak.js is missing: run `npm run build` first',
      ).toBe(true);
      const { code, stdout, stderr } = await runScript(
        'soak',
        ['--duration', '10', '--interval', '2', '--rate', '50', '--json'],
        { timeoutMs: 170_000 },
      );
      expect(code, `soak failed:\n${stderr.slice(-3000)}`).toBe(0);
      const results = JSON.parse(stdout) as SoakResults;
      expect(results.errors).toBe(0);
      expect(results.requests).toBeGreaterThan(200);
      expect(results.intervals.length).toBeGreaterThanOrEqual(4);
      for (const interval of results.intervals) {
        expect(interval.requests).toBeGreaterThan(0);
        expect(Number.isFinite(interval.p50Ms) && interval.p50Ms > 0).toBe(true);
        expect(interval.p99Ms).toBeGreaterThanOrEqual(interval.p50Ms);
      }
      expect(Object.keys(results.memory).sort()).toEqual([
        'comments',
        'event-bus',
        'moderation',
        'posts',
        'query',
      ]);
      for (const [name, growth] of Object.entries(results.memory)) {
        expect(growth.startMiB, name).toBeGreaterThan(10);
        expect(growth.endMiB, name).toBeGreaterThan(10);
        expect(['steady', 'growing'], name).toContain(growth.verdict);
      }
      expect(stderr).toMatch(/RSS .* MiB\/min over the second half/);
    },
  );
});
