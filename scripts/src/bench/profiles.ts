/** `--cpu-prof DIR`: every service profiles itself, and the bench says where each one spends its time. */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { round } from '../harness.js';

/**
 * `--cpu-prof DIR`: Node 20 refuses `--cpu-prof` in NODE_OPTIONS, and the system (scripts/src/process/) spawns `node dist/index.js`
 * with no flags, so each service preloads this module (`--import`, which NODE_OPTIONS allows): it starts the
 * V8 sampling profiler through node:inspector and writes `<service>-<pid>.cpuprofile` when the process exits
 * (the services exit through `process.exit` after SIGTERM, and the inspector answers synchronously).
 */
const PROFILER_PRELOAD = `import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
const dir = process.env.BENCH_CPU_PROF_DIR;
const tag = process.env.BENCH_CPU_PROF_TAG ?? '';
const session = new Session();
session.connect();
session.post('Profiler.enable');
session.post('Profiler.setSamplingInterval', { interval: 250 });
session.post('Profiler.start');
process.on('exit', () => {
  session.post('Profiler.stop', (err, result) => {
    if (err || !dir) return;
    const service = path.basename(path.resolve(path.dirname(process.argv[1] ?? '.'), '..'));
    writeFileSync(path.join(dir, tag + service + '-' + process.pid + '.cpuprofile'), JSON.stringify(result.profile));
  });
});
`;

let profileDir: string | undefined;

export function enableProfiler(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'preload.mjs'), PROFILER_PRELOAD);
  profileDir = dir;
}

/** The environment that makes a service profile itself (nothing when --cpu-prof is not given). */
export function profilerEnv(tag = ''): Record<string, string> {
  if (!profileDir) return {};
  const preload = pathToFileURL(path.join(profileDir, 'preload.mjs')).href;
  const inherited = process.env.NODE_OPTIONS ? `${process.env.NODE_OPTIONS} ` : '';
  return {
    NODE_OPTIONS: `${inherited}--import=${preload}`,
    BENCH_CPU_PROF_DIR: profileDir,
    BENCH_CPU_PROF_TAG: tag ? `${tag}-` : '',
  };
}

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  file: string;
  /** Sampled time not idle, in ms. */
  busyMs: number;
  /** Self time by package (node_modules), Node module (node:...), our own code, or V8 bucket, in % of busy. */
  byPackage: { name: string; percent: number }[];
  byFunction: { name: string; percent: number }[];
}

/** Where a .cpuprofile spends its time: self time grouped by package, and the hottest functions. */
function summarizeProfile(file: string): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const byPackage = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of selfUs) {
    const frame = nodes.get(id);
    if (!frame || frame.functionName === '(idle)') continue;
    busy += us;
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(frame.url)?.[1];
    const own = /\/([^/]+)\/dist\//.exec(frame.url)?.[1];
    const group =
      pkg ??
      (frame.url.startsWith('node:')
        ? frame.url
        : own
          ? `(ours) ${own}`
          : frame.url || `${frame.functionName || '(anonymous)'} (native)`);
    byPackage.set(group, (byPackage.get(group) ?? 0) + us);
    const where = frame.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*?\/([^/]+\/dist\/)/, '$1');
    const fn = `${frame.functionName || '(anonymous)'}${where ? ` ${where}:${frame.lineNumber + 1}` : ''}`;
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + us);
  }
  const top = (map: Map<string, number>, n: number) =>
    [...map]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([name, us]) => ({ name, percent: round((100 * us) / busy, 1) }));
  return {
    file: path.basename(file),
    busyMs: round(busy / 1000, 0),
    byPackage: top(byPackage, 15),
    byFunction: top(byFunction, 15),
  };
}

export function summarizeProfiles(dir: string): ProfileSummary[] {
  return readdirSync(dir)
    .filter((file) => file.endsWith('.cpuprofile'))
    .sort()
    .map((file) => summarizeProfile(path.join(dir, file)));
}

export function formatProfiles(summaries: ProfileSummary[]): string {
  return summaries
    .map((s) => {
      const packages = s.byPackage.map((p) => `    ${p.percent.toFixed(1).padStart(5)}%  ${p.name}`);
      const functions = s.byFunction
        .slice(0, 10)
        .map((f) => `    ${f.percent.toFixed(1).padStart(5)}%  ${f.name}`);
      return [
        `${s.file}: ${s.busyMs} ms busy (self time)`,
        '  by package:',
        ...packages,
        '  hottest functions:',
        ...functions,
      ].join('\n');
    })
    .join('\n');
}
