/** The report of `--replicas`: one row per replica count, then where the CPU time went in each. */
import { machineLine, markdownTable } from './report.js';
import type { CpuUse, ReplicaCountResult, ReplicasResults } from './replicas.js';

/** The columns of the CPU table, in the order a comment goes through them; others follow. */
const PROCESSES = ['comments', 'posts', 'moderation', 'query', 'event-bus', 'nats-server', 'bench'];

const fixed = (value: number | undefined) => (value ?? 0).toFixed(2);
const ms = (value: number) => `${value.toFixed(value < 10 ? 2 : 1)} ms`;

export function formatReplicasReport(r: ReplicasResults): string {
  const servers =
    r.natsNodes > 1
      ? `a JetStream cluster of ${r.natsNodes} nats-servers, the stream on ${r.streamReplicas}`
      : 'one nats-server';
  const header = [
    `${r.date} · ${r.command} · ${r.mode} run in ${r.totalSeconds} s`,
    machineLine(r.machine),
    `system: transport nats on ${servers}; each replica count on a fresh stream; LOG_LEVEL=${r.logLevel}`,
  ];
  const figures = [
    [
      'replicas of each service',
      'latency p50 / p99 (POST sent → final, pushed by a query replica)',
      'comments/s (first POST → last final in every query replica)',
      'errors',
    ],
    ...r.runs.map((run) => [
      String(run.replicas),
      `${ms(run.latency.fromRequestMs.p50)} / ${ms(run.latency.fromRequestMs.p99)}`,
      `${run.throughput.perSecond.toFixed(0)}/s${run.throughput.complete ? '' : ' (NOT ALL FINAL)'}`,
      String(Object.values(run.errors).reduce((sum, n) => sum + n, 0)),
    ]),
  ];
  return [
    ...header,
    '',
    ...markdownTable(figures),
    '',
    'CPU per comment during the throughput phase (share of all the CPU time used), and cores kept busy:',
    '',
    ...markdownTable(cpuRows(r.runs, (run) => run.throughput.cpu)),
    '',
    ...r.runs.flatMap(notes),
    '',
  ].join('\n');
}

/** One row per replica count: each process kind's CPU ms per comment and share, the total, the cores busy. */
function cpuRows(runs: ReplicaCountResult[], cpuOf: (run: ReplicaCountResult) => CpuUse): string[][] {
  const seen = new Set(runs.flatMap((run) => Object.keys(cpuOf(run).msPerComment)));
  seen.delete('total');
  const names = [
    ...PROCESSES.filter((name) => seen.has(name)),
    ...[...seen].filter((n) => !PROCESSES.includes(n)),
  ];
  return [
    ['replicas', ...names, 'total', 'cores busy'],
    ...runs.map((run) => {
      const cpu = cpuOf(run);
      return [
        String(run.replicas),
        ...names.map((name) => `${fixed(cpu.msPerComment[name])} (${cpu.sharePercent[name] ?? 0}%)`),
        fixed(cpu.msPerComment.total),
        String(cpu.coresBusy),
      ];
    }),
  ];
}

function notes(run: ReplicaCountResult): string[] {
  const lat = run.latency;
  const t = run.throughput;
  const errors = Object.entries(run.errors)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ');
  const latencyCpu = Object.entries(lat.cpu.msPerComment)
    .map(([name, value]) => `${name} ${value}`)
    .join(', ');
  return [
    `${run.replicas} replica(s), stream ${run.stream}:`,
    `  latency: ${lat.fromRequestMs.count} samples after ${lat.settings.warmup} warm-up; from the 201: p50 ` +
      `${ms(lat.afterCreatedMs.p50)}, p99 ${ms(lat.afterCreatedMs.p99)}; the POST alone: p50 ` +
      `${ms(lat.createMs.p50)}, p99 ${ms(lat.createMs.p99)}; CPU ms per comment: ${latencyCpu}`,
    `  throughput: ${t.settings.writers} writers on ${t.settings.posts} posts for ${t.settings.durationMs / 1000} s: ` +
      `${t.created} created (${t.createdPerSecond}/s, POST p50 ${ms(t.createMs.p50)}, p99 ${ms(t.createMs.p99)}), ` +
      `${t.final} final in every query replica ${t.drainMs} ms after the writers stopped`,
    `  errors: ${errors}`,
  ];
}
