/**
 * `npm run audit:prod`: `npm audit --omit=dev`, failing on any high or critical finding in what the
 * services ship. The audit needs the registry's audit endpoint; when that cannot be reached (offline, or a
 * registry mirror that only serves GET), the audit did not run, and this says so loudly, with its own exit
 * code, rather than passing.
 *
 *   exit 0: no high or critical finding   exit 1: some   exit 2: the audit could not run
 */
import { spawnSync } from 'node:child_process';
import { ROOT_DIR } from './process/names.js';

export type AuditVerdict =
  | { outcome: 'clean' | 'findings'; counts: Record<string, number>; message: string }
  | { outcome: 'not-run'; message: string };

/** Reads `npm audit --json`'s output: a report, or an error from the audit endpoint (or nothing usable). */
export function auditVerdict(stdout: string): AuditVerdict {
  let report: {
    metadata?: { vulnerabilities?: Record<string, number> };
    message?: string;
    error?: { summary?: string; detail?: string } | string;
  };
  try {
    report = JSON.parse(stdout) as typeof report;
  } catch {
    return {
      outcome: 'not-run',
      message: `npm audit printed no JSON report: ${stdout.slice(0, 200) || '(nothing)'}`,
    };
  }
  const counts = report.metadata?.vulnerabilities;
  if (!counts) {
    const why =
      report.message ??
      (typeof report.error === 'string' ? report.error : report.error?.summary || report.error?.detail) ??
      'no report';
    return { outcome: 'not-run', message: `the audit endpoint could not be used: ${why}` };
  }
  const serious = (counts.high ?? 0) + (counts.critical ?? 0);
  const summary = ['critical', 'high', 'moderate', 'low']
    .map((level) => `${counts[level] ?? 0} ${level}`)
    .join(', ');
  return serious > 0
    ? { outcome: 'findings', counts, message: `${serious} high or critical: ${summary}` }
    : { outcome: 'clean', counts, message: `no high or critical finding (${summary})` };
}

const EXIT = { clean: 0, findings: 1, 'not-run': 2 } as const;

function main(): void {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const run = spawnSync(npm, ['audit', '--omit=dev', '--json'], {
    cwd: ROOT_DIR,
    encoding: 'utf8',
    timeout: 120_000,
    maxBuffer: 64 * 1024 * 1024,
  });
  const verdict = run.error
    ? ({ outcome: 'not-run', message: `npm audit could not be started: ${run.error.message}` } as const)
    : auditVerdict(run.stdout);
  const label = { clean: 'passed', findings: 'FAILED', 'not-run': 'NOT RUN (this is not a pass)' }[
    verdict.outcome
  ];
  process.stdout.write(`npm audit --omit=dev: ${label}: ${verdict.message}\n`);
  if (verdict.outcome === 'findings') process.stdout.write(`run \`npm audit --omit=dev\` for the details\n`);
  process.exitCode = EXIT[verdict.outcome];
}

if (process.argv[1]?.endsWith('audit.js')) main();
