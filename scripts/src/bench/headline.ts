/**
 * The head of the report: a comment's latency and the throughput from the user's side (from sending the
 * POST to the final status in query), each beside the floor measured in the same run and the system's
 * ratio to it, then the CPU per comment of every process; the figures from the 201 follow as details.
 */
import { FLOOR_EXCHANGES } from './floor-chain.js';
import type { LatencyResult } from './latency.js';
import { COURSE, TARGETS } from './options.js';
import type { Results, WithCpu } from './results.js';

/** A phase's rows of the table (figure, measured, floor, system ÷ floor, target, course, mark). */
export interface Section {
  rows: string[][];
  notes: string[];
}

export const ms = (value: number) => `${value.toFixed(value < 10 ? 2 : 1)} ms`;
export const mark = (ok: boolean) => (ok ? '✔' : '✘');
const times = (ratio: number | null) => (ratio === null ? '' : `${ratio.toFixed(2)}×`);
const cpuMs = (value: number | undefined) => (value === undefined ? '–' : value.toFixed(2));

/** `; CPU per comment: name ms, ...` for a note, or nothing. */
export const cpuNote = (perComment: Record<string, number> | null) =>
  perComment
    ? `; CPU per comment: ${Object.entries(perComment)
        .map(([name, value]) => `${name} ${value} ms`)
        .join(', ')}`
    : '';

/** The processes of the CPU rows, in the order a comment goes through them; others follow. */
const PROCESSES = ['comments', 'event-bus', 'moderation', 'query', 'posts', 'bench'];

export function latencyNote(lat: WithCpu<LatencyResult>, what = `latency (${lat.observer})`): string {
  const seen =
    lat.observer === 'push'
      ? 'seen on GET /posts/live'
      : `${lat.pollsPerSample} GET /posts per comment` +
        (lat.settings.pollIntervalMs ? ` (${lat.settings.pollIntervalMs} ms apart)` : '');
  return (
    `${what}: ${lat.afterCreatedMs.count} samples after ${lat.settings.warmup} warm-up; ` +
    `from sending the POST: p50 ${ms(lat.fromRequestMs.p50)}, p99 ${ms(lat.fromRequestMs.p99)}; from the ` +
    `201: p50 ${ms(lat.afterCreatedMs.p50)}, p99 ${ms(lat.afterCreatedMs.p99)}; the POST alone: p50 ` +
    `${ms(lat.createMs.p50)}, p99 ${ms(lat.createMs.p99)}; ${seen}; ` +
    `${lat.wrongStatus} with a wrong status${cpuNote(lat.cpuMsPerComment)}`
  );
}

/** A latency row from sending the POST, beside the floor, with its target (in ms and over the floor). */
function latencyRow(which: 'p50' | 'p99', value: number, floor: number | null, ratio: number | null) {
  const target = which === 'p50' ? TARGETS.latencyFromPostP50Ms : TARGETS.latencyFromPostP99Ms;
  return [
    `latency ${which}, POST sent → final status pushed by query`,
    ms(value),
    floor === null ? '' : ms(floor),
    times(ratio),
    `≤ ${target} ms, ≤ ${TARGETS.latencyToFloor}× floor`,
    '',
    mark(value <= target && (ratio === null || ratio <= TARGETS.latencyToFloor)),
  ];
}

/** Latency and throughput from the user's side, each beside the floor; then the CPU per comment. */
export function headlineSection(r: Results): Section {
  const { figures: f, details: d } = r;
  const section: Section = { rows: [], notes: [] };
  if (d.latency && f.latencyFromPostP50Ms !== null && f.latencyFromPostP99Ms !== null) {
    section.rows.push(
      latencyRow('p50', f.latencyFromPostP50Ms, f.floorLatencyP50Ms, f.latencyP50ToFloor),
      latencyRow('p99', f.latencyFromPostP99Ms, f.floorLatencyP99Ms, f.latencyP99ToFloor),
    );
    section.notes.push(latencyNote(d.latency));
  }
  if (d.throughput && f.throughputPerSec !== null) {
    const t = d.throughput;
    section.rows.push([
      'throughput, first POST → last comment final in query',
      `${f.throughputPerSec.toFixed(0)} comments/s`,
      f.floorPerSec === null ? '' : `${f.floorPerSec.toFixed(0)}/s`,
      times(f.throughputToFloor),
      `≥ ${TARGETS.throughputPerSec.toLocaleString('en')}/s, 0 errors`,
      `${COURSE.throughputPerSec}/s`,
      mark(f.throughputPerSec >= TARGETS.throughputPerSec && t.complete && t.errorCount === 0),
    ]);
  }
  section.rows.push(...cpuRows(r));
  section.notes.push(...floorNotes(r));
  return section;
}

/**
 * The CPU ms per comment of the system's processes together (the throughput phase's has a target), then
 * with the bench's own, then of each, as "throughput phase / latency phase", the floor's beside.
 */
function cpuRows({ figures: f, details: d }: Results): string[][] {
  const tput = d.throughput?.cpuMsPerComment ?? null;
  const lat = d.latency?.cpuMsPerComment ?? null;
  if (!tput && !lat) return [];
  const floorTput = d.floor?.throughput?.cpuMsPerComment ?? null;
  const floorLat = d.floor?.latency?.cpuMsPerComment ?? null;
  const pair = (a: Record<string, number> | null, b: Record<string, number> | null, name: string) =>
    a || b ? `${cpuMs(a?.[name])} / ${cpuMs(b?.[name])}` : '';
  const seen = new Set([...Object.keys(tput ?? {}), ...Object.keys(lat ?? {})]);
  seen.delete('total');
  seen.delete('system');
  const names = [...PROCESSES.filter((n) => seen.has(n)), ...[...seen].filter((n) => !PROCESSES.includes(n))];
  const latencyRatio =
    f.latencyCpuMsPerComment !== null && f.floorLatencyCpuMsPerComment
      ? f.latencyCpuMsPerComment / f.floorLatencyCpuMsPerComment
      : null;
  return [
    [
      'CPU ms per comment, throughput / latency phase: the system (every process but the bench)',
      pair(tput, lat, 'system'),
      pair(floorTput, floorLat, 'system'),
      f.cpuToFloor === null ? '' : `${times(f.cpuToFloor)} / ${times(latencyRatio)}`,
      `≤ ${TARGETS.cpuMsPerComment} ms (throughput)`,
      '',
      f.cpuMsPerComment === null ? '' : mark(f.cpuMsPerComment <= TARGETS.cpuMsPerComment),
    ],
    [
      '  all processes, the bench included',
      pair(tput, lat, 'total'),
      pair(floorTput, floorLat, 'total'),
      '',
      '',
      '',
      '',
    ],
    ...names.map((name) => [
      `  ${name}`,
      pair(tput, lat, name),
      pair(floorTput, floorLat, name),
      '',
      '',
      '',
      '',
    ]),
  ];
}

function floorNotes({ details: d }: Results): string[] {
  const floor = d.floor;
  if (!floor) return [];
  const { requests, pushes } = FLOOR_EXCHANGES;
  const notes = [
    `floor: per comment, ${requests} exchanges between bare processes (the POST over node:http, then the publish and ` +
      `2 + 1 + 1 deliveries over one WebSocket per pair, carrying the 2 reactions in their answers, comments applying its own event from the publish's answer) and ${pushes} pushes on the live stream`,
  ];
  if (floor.latency) notes.push(latencyNote(floor.latency, 'floor latency'));
  const t = floor.throughput;
  if (t)
    notes.push(
      `floor throughput: ${t.created} created (${t.createdPerSecond}/s, POST p50 ${ms(t.createMs.p50)}, p99 ` +
        `${ms(t.createMs.p99)}), ${t.final} final ${t.drainMs} ms after the writers stopped, ` +
        `${t.errorCount} errors${t.complete ? '' : ' (NOT ALL FINAL)'}${cpuNote(t.cpuMsPerComment)}`,
    );
  return notes;
}

/** The figures from the 201, and seen by polling `GET /posts` (the course's way): details now. */
export function detailSection({ figures: f, details: d }: Results): Section {
  const section: Section = { rows: [], notes: [] };
  if (d.latencyCold && f.latencyColdFromPostP50Ms !== null && f.latencyColdFromPostP99Ms !== null) {
    const { warmup, samples } = d.latencyCold.settings;
    section.rows.push([
      `detail: freshly started (comments ${warmup + 1}–${warmup + samples}), POST sent → final pushed, p50 / p99`,
      `${ms(f.latencyColdFromPostP50Ms)} / ${ms(f.latencyColdFromPostP99Ms)}`,
      '',
      '',
      '',
      '',
      '',
    ]);
    section.notes.push(latencyNote(d.latencyCold, 'latency (push, freshly started)'));
  }
  if (f.latencyP50Ms !== null && f.latencyP99Ms !== null && f.latencyMaxMs !== null) {
    section.rows.push([
      'detail: from the 201 → final pushed, p50 / p99 / max',
      `${ms(f.latencyP50Ms)} / ${ms(f.latencyP99Ms)} / ${ms(f.latencyMaxMs)}`,
      '',
      '',
      `≤ ${TARGETS.latencyP50Ms} / ≤ ${TARGETS.latencyP99Ms} ms`,
      '',
      '',
    ]);
  }
  if (d.latencyPolled && f.latencyPolledP50Ms !== null && f.latencyPolledP99Ms !== null) {
    section.rows.push([
      'detail: from the 201, seen by polling GET /posts, p50 / p99',
      `${ms(f.latencyPolledP50Ms)} / ${ms(f.latencyPolledP99Ms)}`,
      '',
      '',
      '',
      `${COURSE.latencyP50Ms} / ${COURSE.latencyP99Ms} ms`,
      '',
    ]);
    section.notes.push(latencyNote(d.latencyPolled));
  }
  return section;
}
