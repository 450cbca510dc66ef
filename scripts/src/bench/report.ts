/** The report a run prints: the table of figures against the targets, a note per phase, hops and profiles. */
import { cpuNote, detailSection, headlineSection, mark, ms, type Section } from './headline.js';
import { formatHops } from './hops.js';
import { TARGETS } from './options.js';
import { formatProfiles } from './profiles.js';
import type { StartFigures } from './replay.js';
import type { Results } from './results.js';

/** The whole report: the table, then the hops and profiles when the run gathered them. */
export function formatReport(results: Results): string {
  const profiles = results.details.profiles ? `\n${formatProfiles(results.details.profiles)}\n` : '';
  const hops = results.details.hops ? `\n${formatHops(results.details.hops)}\n` : '';
  return `\n${formatTable(results)}\n${hops}${profiles}`;
}

export function formatTable(r: Results): string {
  const sections = [
    headlineSection,
    throughputSection,
    detailSection,
    rateSection,
    replaySection,
    clientSection,
  ].map((section) => section(r));
  // Rows without a floor (figure, measured, target, course, mark) get empty floor cells.
  const full = (row: string[]) => (row.length === 5 ? [row[0]!, row[1]!, '', '', ...row.slice(2)] : row);
  const rows = [
    ['figure', 'measured', 'floor (bare processes)', 'system ÷ floor', 'target', 'course (JS)', ''],
    ...sections.flatMap((s) => s.rows.map(full)),
  ];
  const notes = sections.flatMap((s) => s.notes);
  const d = r.details;
  const m = r.machine;
  const header = [
    `${r.date} · ${r.command} · ${r.mode} run in ${d.totalSeconds} s`,
    machineLine(m),
    `system: ${r.system}, transport ${r.transport}, LOG_LEVEL=${r.logLevel}`,
  ];
  const errors = `errors: ${Object.entries(r.errors)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ')}`;
  return [...header, '', ...markdownTable(rows), '', ...notes, errors].join('\n');
}

/** The machine a run ran on, and its load: others' work on it skews every figure. */
export const machineLine = (m: Results['machine']) =>
  `machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGB} GB, node ${m.node}, ${m.platform}; ` +
  `load average ${m.loadBefore} before, ${m.loadAfter} after`;

/** The rows as a markdown table, each column as wide as its widest cell; the first row is the header. */
export function markdownTable(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  const line = (row: string[]) => `| ${row.map((cell, col) => cell.padEnd(widths[col]!)).join(' | ')} |`;
  return [line(rows[0]!), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.slice(1).map(line)];
}

/** The throughput phase's errors and how its comments went (the figure heads the table). */
function throughputSection({ details: d }: Results): Section {
  if (!d.throughput) return { rows: [], notes: [] };
  const t = d.throughput;
  const errors =
    Object.entries(t.errors)
      .map(([status, n]) => `${n}× ${status}`)
      .join(', ') || 'none';
  return {
    rows: [['throughput errors (non-201)', `${t.errorCount} (${errors})`, '0', '', mark(t.errorCount === 0)]],
    notes: [
      `throughput: ${t.settings.writers} writers on ${t.settings.posts} posts for ${t.settings.durationMs / 1000} s: ` +
        `${t.created} created (${t.createdPerSecond}/s, POST p50 ${ms(t.createMs.p50)}, p99 ${ms(t.createMs.p99)}), ` +
        `${t.final} final in query ${t.drainMs} ms after the writers stopped` +
        `${t.complete ? '' : ' (NOT ALL FINAL before the deadline)'}${cpuNote(t.cpuMsPerComment)}`,
    ],
  };
}

const cpuUs = (value: number | null) => (value === null ? '?' : `${value} µs`);

function rateSection({ figures: f, details: d }: Results): Section {
  if (!d.rate || f.queryRps === null || f.bareRps === null || f.queryToBareRatio === null)
    return { rows: [], notes: [] };
  const rate = d.rate;
  return {
    rows: [
      ['query GET /posts', `${f.queryRps.toFixed(0)} req/s`, '', '', ''],
      ['bare node:http, the same answer (headers too)', `${f.bareRps.toFixed(0)} req/s`, '', '', ''],
      [
        'query / bare',
        f.queryToBareRatio.toFixed(2),
        `≥ ${TARGETS.queryToBareRatio}`,
        '0.04',
        mark(f.queryToBareRatio >= TARGETS.queryToBareRatio),
      ],
    ],
    notes: [
      `GET /posts: ${rate.posts} posts, ${rate.comments} comments, ${(rate.bodyBytes / 1024).toFixed(0)} KiB; ` +
        `autocannon ${rate.settings.connections} connections × ${rate.settings.durationS} s; query p50 ` +
        `${rate.query.latencyP50Ms} ms p99 ${rate.query.latencyP99Ms} ms (${rate.query.mbPerSecond} MB/s), bare p50 ` +
        `${rate.bare.latencyP50Ms} ms p99 ${rate.bare.latencyP99Ms} ms (${rate.bare.mbPerSecond} MB/s); CPU per ` +
        `request: query ${cpuUs(rate.query.cpuUsPerRequest)}, bare ${cpuUs(rate.bare.cpuUsPerRequest)}`,
    ],
  };
}

function replaySection({ figures: f, details: d, transport }: Results): Section {
  if (!d.replay || f.readyMs === null) return { rows: [], notes: [] };
  const replay = d.replay;
  const store = transport === 'nats' ? 'JetStream store' : 'SQLite';
  return {
    rows: [
      [
        `query ready from ${replay.events.toLocaleString('en')} events (first start, no code cache)`,
        `${(f.readyMs / 1000).toFixed(2)} s`,
        `≤ ${TARGETS.readyMs / 1000} s`,
        '',
        mark(f.readyMs <= TARGETS.readyMs && replay.verified),
      ],
      [
        'detail: query restarted, with the code cache of its first start',
        `${(replay.restart.readyMs / 1000).toFixed(2)} s`,
        '',
        '',
        '',
      ],
    ],
    notes: [
      `start: ${replay.posts} posts and ${replay.comments} comments in ${replay.events} events ` +
        `(${(replay.databaseBytes / 2 ** 20).toFixed(1)} MiB of ${store}, built in ${replay.buildMs} ms); ` +
        `polled every ${replay.pollMs} ms`,
      startNote('first start', replay),
      startNote('restart', replay.restart),
    ],
  };
}

/** One start of query: spawn to ready, its two parts, the CPU spent, and whether it served the whole log. */
function startNote(name: string, start: StartFigures): string {
  return (
    `  ${name}: spawn → /readyz 200 in ${start.readyMs} ms` +
    (start.bootMs === null ? '' : ` (boot ${start.bootMs} ms, catch-up ${start.catchUpMs} ms)`) +
    (start.queryCpuMs === null ? '' : `, CPU to ready: query ${start.queryCpuMs} ms`) +
    (start.busCpuMs === null ? '' : `, bus ${start.busCpuMs} ms`) +
    `; code cache ${start.codeCache ? 'found' : 'none'}; ` +
    `${start.verified ? 'every post and comment served' : 'NOT VERIFIED'}`
  );
}

function clientSection({ figures: f, details: d }: Results): Section {
  if (!d.client || f.clientJsGzipKb === null) return { rows: [], notes: [] };
  const c = d.client;
  const rows = [
    [
      'client JavaScript, gzipped',
      `${f.clientJsGzipKb.toFixed(1)} kB`,
      `≤ ${TARGETS.clientJsGzipKb} kB`,
      '',
      mark(f.clientJsGzipKb <= TARGETS.clientJsGzipKb),
    ],
  ];
  if (f.clientLoadMs !== null)
    rows.push([`page load → ${c.posts} posts drawn (median)`, ms(f.clientLoadMs), '', '', '']);
  const files = c.jsFiles
    .map(
      (file) =>
        `${file.file} ${(file.bytes / 1000).toFixed(1)} kB (${(file.gzipBytes / 1000).toFixed(1)} gzipped)`,
    )
    .join(', ');
  const loads = c.skipped
    ? `page loads skipped: ${c.skipped}`
    : `Chromium (headless, cache off) via the router, navigation start → ${c.posts} cards in the post list: ` +
      `${c.loadsMs.map((v) => ms(v)).join(', ')}`;
  return { rows, notes: [`client: ${files}; ${loads}`] };
}
