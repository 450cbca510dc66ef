/**
 * Turns the services' pino JSON lines into one readable line each, prefixed with the service name:
 *
 *   12:03:04.567 posts      INFO  post created id=3f2a9c1b seq=7 type=PostCreated
 *
 * Lines that are not pino JSON (nodemon, tsc, a stack trace on stderr) are printed as they are.
 */

const LEVELS: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

const ANSI = {
  reset: '\x1b[0m',
  dim: '\x1b[2m',
  bold: '\x1b[1m',
  red: '\x1b[31m',
  green: '\x1b[32m',
  yellow: '\x1b[33m',
  blue: '\x1b[34m',
  magenta: '\x1b[35m',
  cyan: '\x1b[36m',
  gray: '\x1b[90m',
} as const;

type Color = keyof typeof ANSI;

const LEVEL_COLORS: Record<string, Color> = {
  TRACE: 'gray',
  DEBUG: 'gray',
  INFO: 'green',
  WARN: 'yellow',
  ERROR: 'red',
  FATAL: 'red',
};

const NAME_COLORS: Color[] = ['cyan', 'magenta', 'blue', 'yellow', 'green'];

/** Fields shown after the message when a line has them (the ones that follow an event through the system). */
const SHOWN_FIELDS = ['id', 'seq', 'type'] as const;

export interface Painter {
  (color: Color, text: string): string;
}

/** Colors only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function painter(stream: { isTTY?: boolean } = process.stdout, env = process.env): Painter {
  const enabled =
    (Boolean(stream.isTTY) && !env.NO_COLOR && env.TERM !== 'dumb') || (!!env.FORCE_COLOR && !env.NO_COLOR);
  return enabled ? (color, text) => `${ANSI[color]}${text}${ANSI.reset}` : (_color, text) => text;
}

export const plain: Painter = (_color, text) => text;

/** A stable color per service name, so each service's lines are easy to follow. */
export function nameColor(name: string): Color {
  let hash = 0;
  for (const char of name) hash = (hash * 31 + char.charCodeAt(0)) >>> 0;
  return NAME_COLORS[hash % NAME_COLORS.length] ?? 'cyan';
}

function formatTime(time: unknown): string {
  const date = typeof time === 'number' || typeof time === 'string' ? new Date(time) : new Date(Number.NaN);
  if (Number.isNaN(date.getTime())) return '            ';
  const pad = (n: number, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return /\s/.test(value) ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? String(value);
}

/** The text of a pino line without the prefix, or undefined if the line is not a pino JSON object. */
export function formatPinoLine(line: string, paint: Painter = plain): string | undefined {
  if (!line.startsWith('{')) return undefined;
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) return undefined;
    record = parsed as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof record.level !== 'number' && typeof record.level !== 'string') return undefined;

  const level =
    typeof record.level === 'number'
      ? (LEVELS[record.level] ?? `L${record.level}`)
      : String(record.level).toUpperCase();
  const parts = [
    paint('gray', formatTime(record.time)),
    paint(LEVEL_COLORS[level] ?? 'reset', level.padEnd(5)),
    typeof record.msg === 'string' ? record.msg : '',
  ];
  for (const field of SHOWN_FIELDS) {
    if (record[field] !== undefined) parts.push(paint('dim', `${field}=${formatValue(record[field])}`));
  }
  const err = record.err;
  if (typeof err === 'string') {
    parts.push(paint('red', `err=${formatValue(err)}`));
  } else if (err && typeof err === 'object' && typeof (err as { message?: unknown }).message === 'string') {
    parts.push(paint('red', `err=${formatValue((err as { message: string }).message)}`));
  }
  return parts.filter(Boolean).join(' ');
}

/** One output line for a line a service wrote: `name | text`, with the name padded to `width`. */
export function formatServiceLine(
  name: string,
  line: string,
  options: { width?: number; paint?: Painter; stderr?: boolean } = {},
): string {
  const paint = options.paint ?? plain;
  const prefix = paint(nameColor(name), name.padEnd(options.width ?? 10));
  const pretty = formatPinoLine(line, paint);
  if (pretty !== undefined) return `${prefix} ${pretty}`;
  return `${prefix} ${options.stderr ? paint('red', line) : line}`;
}
