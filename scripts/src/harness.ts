/**
 * What the measuring scripts (`npm run bench`, `npm run chaos`, `npm run soak`) share: their command line
 * and messages, a seeded random generator, requests that report failures as values,
 * percentiles, and a process's memory from /proc.
 */
import { readFileSync } from 'node:fs';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { bearerHeader, HttpClient } from '@blog/common';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** What parseArgs gives for these options, strict and without positionals. */
type ScriptArgs<O extends ParseArgsOptionsConfig> = ReturnType<
  typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: false }>
>['values'];

/**
 * A script's options by node:util's parseArgs, strict and without positionals, plus `-h/--help`, which
 * prints `usage` and exits. An unknown or malformed option throws, naming it.
 */
export function parseScriptArgs<const O extends ParseArgsOptionsConfig>(
  argv: string[],
  options: O,
  usage: string,
): ScriptArgs<O> {
  const { values } = parseArgs({
    args: argv,
    options: { ...options, help: { type: 'boolean', short: 'h', default: false } },
    strict: true,
    allowPositionals: false,
  });
  if ((values as { help?: boolean }).help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  return values as ScriptArgs<O>;
}

/** Progress and results go to stderr, so that `--json` leaves stdout to the JSON. */
export const say = (message: string) => process.stderr.write(`${message}\n`);

/** Runs a script's `main`; a failure prints its stack and exits 1. */
export function runScript(name: string, main: () => Promise<void>): void {
  main().catch((err: unknown) => {
    say(`${name} failed: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
}

/** mulberry32: a tiny seeded generator, so a run's choices can be replayed from its seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface Random {
  /** In [0, 1). */
  next(): number;
  /** In [min, max). */
  between(min: number, max: number): number;
  chance(probability: number): boolean;
  pick<T>(items: readonly T[]): T;
}

export function seededRandom(seed: number): Random {
  const next = mulberry32(seed);
  return {
    next,
    between: (min, max) => min + next() * (max - min),
    chance: (probability) => next() < probability,
    pick: (items) => items[Math.floor(next() * items.length)]!,
  };
}

// The one delay of the scripts, under the name bench.ts knows it by.
export { delay as sleep } from '@blog/common/process';

export interface Answer {
  /** 0 when no answer came (see `error`). */
  status: number;
  body: string;
  /** The network error's code (ECONNREFUSED, ECONNRESET, TIMEOUT...) when no answer came. */
  error?: string;
  ms: number;
}

/** One keep-alive pool for the whole script, loopback only. */
const client = new HttpClient();

/**
 * EVENT_BUS_TOKEN from this script's environment, as `Authorization: Bearer <token>` (nothing when unset):
 * what a script sends with its reads of the bus, and hands to `startSystem` as the system's token.
 */
export const eventBusToken = (): string | undefined => process.env.EVENT_BUS_TOKEN || undefined;
export const busHeaders = (): Record<string, string> => bearerHeader(eventBusToken());

/** An HTTP request that never throws: a failure is an Answer with status 0 and the error's code. */
export async function send(
  url: string,
  json?: unknown,
  timeoutMs = 5000,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const started = performance.now();
  const body = json === undefined ? undefined : JSON.stringify(json);
  try {
    const answer = await client.request(url, { method: body ? 'POST' : 'GET', body, headers, timeoutMs });
    return { status: answer.status, body: answer.body, ms: performance.now() - started };
  } catch (err) {
    const { code, message, reusedSocket } = err as NodeJS.ErrnoException & { reusedSocket?: boolean };
    const error = code === 'ETIMEDOUT' ? 'TIMEOUT' : (code ?? message);
    return {
      status: 0,
      body: '',
      error: error === 'ECONNRESET' && reusedSocket ? 'ECONNRESET (reused socket)' : error,
      ms: performance.now() - started,
    };
  }
}

export function closeAgent(): void {
  client.close();
}

/** GET and parse JSON, or throw with what came back. */
export async function getJson<T>(
  url: string,
  timeoutMs = 15_000,
  headers: Record<string, string> = {},
): Promise<T> {
  const answer = await send(url, undefined, timeoutMs, headers);
  if (answer.status !== 200) {
    throw new Error(`GET ${url}: ${answer.status || answer.error} ${answer.body.slice(0, 200)}`);
  }
  return JSON.parse(answer.body) as T;
}

/** Nearest-rank percentile of values already sorted ascending. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

export const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

/** The resident memory of a process in MiB, from /proc/<pid>/status (Linux); undefined if unknown. */
export const rssMiB = (pid: number | undefined) => procStatusMiB(pid, 'VmRSS');

/** The highest resident memory of a process since it started (its high-water mark), in MiB. */
export const peakRssMiB = (pid: number | undefined) => procStatusMiB(pid, 'VmHWM');

function procStatusMiB(pid: number | undefined, field: 'VmRSS' | 'VmHWM'): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(
      readFileSync(`/proc/${pid}/status`, 'utf8'),
    );
    return match ? Number(match[1]) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Least-squares slope of y over x. */
export function slope(points: readonly { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const meanX = points.reduce((s, p) => s + p.x, 0) / n;
  const meanY = points.reduce((s, p) => s + p.y, 0) / n;
  const num = points.reduce((s, p) => s + (p.x - meanX) * (p.y - meanY), 0);
  const den = points.reduce((s, p) => s + (p.x - meanX) ** 2, 0);
  return den === 0 ? 0 : num / den;
}
