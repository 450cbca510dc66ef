/** `--hops`: the latency phase's comments timed hop by hop from the services' log lines. */
import { round } from '../harness.js';
import type { WallTimes } from './latency.js';
import { distribution } from './stats.js';

export interface LogLine {
  service: string;
  line: string;
}

export interface HopTiming {
  hop: string;
  meanMs: number;
  p50Ms: number;
}

/**
 * `--hops`: where a comment's time goes, hop by hop, from the services' debug log lines (pino times, 1 ms
 * resolution, so the means over all samples say more than any single sample). The bus logs every event it
 * stores with its id and seq; each subscriber logs every event it applies with its seq; reactions have ids
 * derived from their trigger (`<id>/CommentModerated`, `<id>/CommentModerated/CommentUpdated`), so each
 * sample's CommentCreated leads to the rest. The n-th CommentCreated stored is the n-th sample (one at a time).
 */
export function hopTimings(lines: LogLine[], samples: WallTimes[]): HopTiming[] {
  const log = readLog(lines);
  const hops: [string, number[]][] = HOPS.map((hop) => [hop, []]);
  samples.forEach((sample, n) => {
    const rootId = log.created[n];
    if (sample.warmup || rootId === undefined) return;
    sampleSpans(log, rootId, sample)?.forEach((span, i) => hops[i]![1].push(span));
  });
  return hops.map(([hop, values]) => ({
    hop,
    meanMs: values.length ? round(values.reduce((sum, v) => sum + v, 0) / values.length, 2) : Number.NaN,
    p50Ms: values.length ? distribution(values).p50 : Number.NaN,
  }));
}

const HOPS = [
  'POST sent → CommentCreated stored by the bus',
  '  → applied by comments (read your writes)',
  '  → 201 received',
  'CommentCreated stored → applied by moderation',
  '  → CommentModerated stored',
  '  → applied by comments',
  '  → CommentUpdated stored',
  '  → applied by query',
  '  → seen by the bench (the live stream)',
  '201 received → seen (the detail from the 201)',
  'POST sent → seen (the latency figure)',
];

interface ServiceLog {
  /** Every event the bus stored, by id: its seq and when. */
  stored: Map<string, { seq: number; at: number }>;
  /** The ids of the CommentCreated events, in the order stored. */
  created: string[];
  /** When each service applied each seq, by `<service>:<seq>`. */
  applied: Map<string, number>;
}

function readLog(lines: LogLine[]): ServiceLog {
  const log: ServiceLog = { stored: new Map(), created: [], applied: new Map() };
  for (const { service, line } of lines) {
    if (!line.startsWith('{')) continue;
    let record: { time?: unknown; msg?: unknown; id?: unknown; seq?: unknown; type?: unknown };
    try {
      record = JSON.parse(line) as typeof record;
    } catch {
      continue;
    }
    const at = typeof record.time === 'string' ? Date.parse(record.time) : Number.NaN;
    if (!Number.isFinite(at) || typeof record.seq !== 'number') continue;
    if (service === 'event-bus' && record.msg === 'event stored' && typeof record.id === 'string') {
      log.stored.set(record.id, { seq: record.seq, at });
      if (record.type === 'CommentCreated') log.created.push(record.id);
    } else if (record.msg === 'event applied') {
      log.applied.set(`${service}:${record.seq}`, at);
    }
  }
  return log;
}

/** The time of each hop of one sample, in the order of HOPS; undefined if a log line is missing. */
function sampleSpans(log: ServiceLog, rootId: string, sample: WallTimes): number[] | undefined {
  const { stored, applied } = log;
  const createdEvent = stored.get(rootId);
  const moderatedEvent = stored.get(`${rootId}/CommentModerated`);
  const updatedEvent = stored.get(`${rootId}/CommentModerated/CommentUpdated`);
  if (!createdEvent || !moderatedEvent || !updatedEvent) return undefined;
  const times = [sample.sent, createdEvent.at, applied.get(`comments:${createdEvent.seq}`), sample.created];
  const chain = [
    createdEvent.at,
    applied.get(`moderation:${createdEvent.seq}`),
    moderatedEvent.at,
    applied.get(`comments:${moderatedEvent.seq}`),
    updatedEvent.at,
    applied.get(`query:${updatedEvent.seq}`),
    sample.visible,
  ];
  if ([...times, ...chain].some((t) => t === undefined)) return undefined;
  const t = times as number[];
  const c = chain as number[];
  const spans = [t[1]! - t[0]!, t[2]! - t[1]!, t[3]! - t[2]!];
  for (let i = 1; i < c.length; i++) spans.push(c[i]! - c[i - 1]!);
  spans.push(sample.visible - sample.created, sample.visible - sample.sent);
  return spans;
}

export function formatHops(hops: HopTiming[]): string {
  const width = Math.max(...hops.map((h) => h.hop.length));
  const rows = hops.map(
    (h) =>
      `  ${h.hop.padEnd(width)}  mean ${h.meanMs.toFixed(2).padStart(6)} ms   p50 ${h.p50Ms.toFixed(0).padStart(3)} ms`,
  );
  return [`Per hop (latency phase, LOG_LEVEL=debug, log times to the ms):`, ...rows].join('\n');
}
