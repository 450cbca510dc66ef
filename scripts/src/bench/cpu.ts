/** The CPU time each process used during a phase, per comment (Linux /proc; the bench's own from Node). */
import { readFileSync } from 'node:fs';
import { round } from '../harness.js';
import type { System } from '../process/system-types.js';

/** CPU time (user + system) a process has used, from /proc (Linux); undefined elsewhere. */
export function processCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime (fields 14 and 15 of proc(5)), in clock ticks of 1/100 s on Linux.
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return undefined;
  }
}

export type CpuSnapshot = Record<string, number>;

/**
 * The CPU time used so far by each service the bench started, by the other processes given (name → pid,
 * such as nats-servers it runs itself), and by the bench itself.
 */
export function cpuSnapshot(
  system: System | undefined,
  others: Record<string, number | undefined> = {},
): CpuSnapshot {
  const snapshot: CpuSnapshot = {};
  const pids = [...(system?.status() ?? []).map((s) => [s.name, s.pid] as const), ...Object.entries(others)];
  for (const [name, pid] of pids) {
    const ms = processCpuMs(pid);
    if (ms !== undefined) snapshot[name] = ms;
  }
  const own = process.cpuUsage();
  snapshot.bench = (own.user + own.system) / 1000;
  return snapshot;
}

/**
 * CPU milliseconds per comment, by process, between two snapshots (only when the bench started the
 * system): each process, `total` of all of them, and `system`, all but the bench's own.
 */
export function cpuPerComment(
  before: CpuSnapshot,
  after: CpuSnapshot,
  comments: number,
): Record<string, number> | null {
  if (comments <= 0 || Object.keys(after).length <= 1) return null;
  const perComment: Record<string, number> = {};
  let total = 0;
  for (const [name, ms] of Object.entries(after)) {
    const used = ms - (before[name] ?? 0);
    perComment[name] = round(used / comments, 2);
    total += used;
  }
  perComment.total = round(total / comments, 2);
  // The bench drives the system as its users would: its own CPU is the client's, not the system's.
  if ('bench' in after)
    perComment.system = round((total - (after.bench! - (before.bench ?? 0))) / comments, 2);
  return perComment;
}

/**
 * The CPU milliseconds each process used between two snapshots, summed by what it runs: a service's
 * replicas (`query-0`, `query-1`) as `query`, every nats-server (`nats`, `nats-0`...) as `nats-server`.
 */
export function cpuUsedByService(before: CpuSnapshot, after: CpuSnapshot): Record<string, number> {
  const used: Record<string, number> = {};
  for (const [name, ms] of Object.entries(after)) {
    const bare = name.replace(/-\d+$/, '');
    const service = bare === 'nats' ? 'nats-server' : bare;
    used[service] = (used[service] ?? 0) + ms - (before[name] ?? 0);
  }
  return used;
}

/** Runs `measure`, with the CPU ms each process of `snapshot` used per comment meanwhile. */
export async function measuredWithCpu<T>(
  snapshot: () => CpuSnapshot,
  measure: () => Promise<T>,
  comments: (result: T) => number,
): Promise<T & { cpuMsPerComment: Record<string, number> | null }> {
  const tally = new CpuTally(snapshot);
  const result = await tally.during(measure);
  return { ...result, cpuMsPerComment: tally.perComment(comments(result)) };
}

/** The CPU each process used over several stretches of one phase (`during`), per comment at the end. */
export class CpuTally {
  private readonly used: CpuSnapshot = {};

  constructor(private readonly snapshot: () => CpuSnapshot) {}

  async during<T>(measure: () => Promise<T>): Promise<T> {
    const before = this.snapshot();
    const result = await measure();
    for (const [name, ms] of Object.entries(this.snapshot()))
      this.used[name] = (this.used[name] ?? 0) + ms - (before[name] ?? 0);
    return result;
  }

  perComment(comments: number): Record<string, number> | null {
    return cpuPerComment({}, this.used, comments);
  }
}
