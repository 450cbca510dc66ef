/**
 * `npm run bench`: how fast the blog is, measured end to end on real processes (docs/performance.md).
 *
 *   node scripts/dist/bench.js [--quick] [--json] [--out FILE] [--log-level LEVEL] [--transport http|nats]
 *   node scripts/dist/bench.js --posts URL --comments URL --query URL --bus URL   (a system already running)
 *   node scripts/dist/bench.js --only latency --hops            (where a comment's time goes, hop by hop)
 *   node scripts/dist/bench.js --only throughput --cpu-prof DIR (where each service spends its CPU)
 *
 * One run measures, in this order (the throughput phase comes last of the three on the running system, since
 * its thousands of comments would make every later `GET /posts` large):
 *   1. latency: one comment at a time, from its `201` to its final status (approved / rejected) in query;
 *   2. query's `GET /posts` requests per second (autocannon) with 500 posts, beside a bare node:http server
 *      sending the same bytes, measured the same way;
 *   3. throughput: concurrent writers for a fixed time, then until every comment is final in query;
 *   4. the time query takes from its spawn to `/readyz` 200 on a log of 100,000 events;
 *   5. the client: its JavaScript gzipped, and the time from navigation to the post list drawn in Chromium
 *      (through the local router, with the posts the phases before made; run after the rate phase).
 * It prints a markdown table with the targets and the course's figures beside ours, and writes everything
 * as JSON to `.bench/results.json` (`results-quick.json` for `--quick`, `results-partial.json` for a run
 * with --only, --hops, --cpu-prof or --poll-interval, so those never overwrite the standard results; a
 * `--transport nats` run adds `-nats` to the name).
 *
 * Every load goes to 127.0.0.1 only, and every phase is bounded in time.
 */
import { spawn, fork, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL, fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { NatsTransport } from '@blog/common';
import { startNatsServer } from '@blog/common/testing';
import { chromiumMissing, launchChromium } from './browser.js';
import { busHeaders, eventBusToken, mulberry32, parseScriptArgs, say, sleep } from './harness.js';
import {
  ROOT_DIR,
  freePorts,
  startSystem,
  transportOptions,
  type System,
  type SystemOptions,
} from './processes.js';

// ---------------------------------------------------------------------------------------------- settings

interface Settings {
  latency: { warmup: number; samples: number; commentsPerPost: number; everyNthOrange: number };
  throughput: { writers: number; posts: number; durationMs: number; drainTimeoutMs: number };
  rps: { posts: number; commentsPerPost: number; durationS: number; connections: number };
  replay: { events: number; readyTimeoutMs: number };
  client: { loads: number; minPosts: number };
}

const FULL: Settings = {
  latency: { warmup: 30, samples: 300, commentsPerPost: 50, everyNthOrange: 5 },
  throughput: { writers: 32, posts: 20, durationMs: 10_000, drainTimeoutMs: 60_000 },
  rps: { posts: 500, commentsPerPost: 2, durationS: 10, connections: 50 },
  replay: { events: 100_000, readyTimeoutMs: 60_000 },
  client: { loads: 7, minPosts: 50 },
};

const QUICK: Settings = {
  latency: { warmup: 5, samples: 40, commentsPerPost: 50, everyNthOrange: 5 },
  throughput: { writers: 8, posts: 5, durationMs: 2_000, drainTimeoutMs: 30_000 },
  rps: { posts: 100, commentsPerPost: 2, durationS: 2, connections: 50 },
  replay: { events: 10_000, readyTimeoutMs: 30_000 },
  client: { loads: 3, minPosts: 10 },
};

/** The targets of the brief, and the course's own JavaScript implementation measured the same way. */
const TARGETS = {
  latencyP50Ms: 5,
  latencyP99Ms: 20,
  throughputPerSec: 500,
  throughputAimPerSec: 1000,
  queryToBareRatio: 0.5,
  readyMs: 2000,
  clientJsGzipKb: 80,
} as const;
const COURSE = { latencyP50Ms: 32, latencyP99Ms: 85, throughputPerSec: 104, queryToBareRatio: 0.04 } as const;

const REQUEST_TIMEOUT_MS = 15_000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

const USAGE = `Usage: npm run bench [-- options]

Starts the five services (real processes, free ports, a fresh temporary event log), measures latency,
throughput, query's GET /posts rate and query's start on a long log, prints a table and writes JSON.

Options:
  --quick              a short smoke run (few samples, 2 s phases, a log of 10,000 events)
  --json               print the results as JSON on stdout (the table goes to stderr)
  --out FILE           where to write the JSON (default .bench/results.json, or results-quick.json)
  --log-level LEVEL    the services' LOG_LEVEL (default info)
  --transport T        http (the event-bus) or nats (NATS JetStream, on a nats-server of its own unless
                       NATS_URL is set); default: EVENT_TRANSPORT, else http
  --only PHASES        some of latency,rate,throughput,replay,client (comma-separated; default all)
  --poll-interval MS   a pause between the latency phase's GET /posts polls (default 0: a tight loop)
  --cpu-prof DIR       CPU-profile every service (V8 inspector, via NODE_OPTIONS=--import) into DIR and
                       print where each one spends its time
  --hops               time each hop of the latency phase's comments from the services' log lines
                       (runs them at LOG_LEVEL=debug)
  --posts URL --comments URL --query URL --bus URL
                       measure a system already running there instead (127.0.0.1 only); the start-up
                       phase still spawns its own event-bus and query on free ports
  --help               this text`;

interface Options {
  quick: boolean;
  json: boolean;
  out: string;
  logLevel: string;
  transport: Pick<SystemOptions, 'transport' | 'natsUrl' | 'natsStream'>;
  urls: Urls | undefined;
  phases: Set<Phase>;
  pollIntervalMs: number;
  cpuProfDir: string | undefined;
  hops: boolean;
}

const PHASES = ['latency', 'rate', 'throughput', 'replay', 'client'] as const;
type Phase = (typeof PHASES)[number];

interface Urls {
  posts: string;
  comments: string;
  query: string;
  bus: string;
}

function parseOptions(argv: string[]): Options {
  const values = parseScriptArgs(
    argv,
    {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      transport: { type: 'string' },
      only: { type: 'string' },
      'poll-interval': { type: 'string', default: '0' },
      'cpu-prof': { type: 'string' },
      hops: { type: 'boolean', default: false },
      posts: { type: 'string' },
      comments: { type: 'string' },
      query: { type: 'string' },
      bus: { type: 'string' },
    },
    USAGE,
  );
  const given = (['posts', 'comments', 'query', 'bus'] as const).filter((name) => values[name] !== undefined);
  let urls: Urls | undefined;
  if (given.length > 0) {
    if (given.length < 4) throw new Error('--posts, --comments, --query and --bus go together');
    urls = {
      posts: loopbackUrl('posts', values.posts!),
      comments: loopbackUrl('comments', values.comments!),
      query: loopbackUrl('query', values.query!),
      bus: loopbackUrl('bus', values.bus!),
    };
  }
  const phases = new Set<Phase>();
  for (const name of (values.only ?? PHASES.join(',')).split(',').map((p) => p.trim())) {
    if (!(PHASES as readonly string[]).includes(name)) {
      throw new Error(`--only: "${name}" is not one of ${PHASES.join(', ')}`);
    }
    phases.add(name as Phase);
  }
  const pollIntervalMs = Number(values['poll-interval']);
  if (!Number.isFinite(pollIntervalMs) || pollIntervalMs < 0) {
    throw new Error('--poll-interval: a number of milliseconds, 0 or more');
  }
  // A run that is not the standard one does not overwrite the standard results.
  const partial =
    phases.size < PHASES.length || pollIntervalMs > 0 || values['cpu-prof'] !== undefined || values.hops;
  const transport = transportOptions(values.transport);
  if (values.hops && transport.transport === 'nats') {
    throw new Error("--hops reads the HTTP bus's log lines: it has no meaning with --transport nats");
  }
  const name =
    (values.quick ? 'results-quick' : partial ? 'results-partial' : 'results') +
    (transport.transport === 'nats' ? '-nats' : '');
  return {
    transport,
    quick: values.quick,
    json: values.json,
    out: path.resolve(values.out ?? path.join(ROOT_DIR, '.bench', `${name}.json`)),
    logLevel: values.hops ? 'debug' : values['log-level'],
    urls,
    hops: values.hops,
    phases,
    pollIntervalMs,
    cpuProfDir: values['cpu-prof'] === undefined ? undefined : path.resolve(values['cpu-prof']),
  };
}

/** The load phases only ever go to this machine. */
function loopbackUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`--${name} ${value}: not a URL`);
  }
  if (url.protocol !== 'http:' || !LOOPBACK.has(url.hostname)) {
    throw new Error(`--${name} ${value}: the bench only loads http://127.0.0.1 (or localhost)`);
  }
  return url.origin.replace('localhost', '127.0.0.1');
}

// ---------------------------------------------------------------------------------------------- HTTP

/** The bench's own client: one keep-alive pool, no parsing unless asked. */
const agent = new http.Agent({ keepAlive: true, maxSockets: 256, keepAliveMsecs: 10_000 });

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function request(
  url: string,
  options: { method?: string; json?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = options.json === undefined ? undefined : JSON.stringify(options.json);
    const headers: Record<string, string | number> = { ...options.headers };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = Buffer.byteLength(payload);
    }
    const req = http.request(
      url,
      { method: options.method ?? 'GET', agent, headers, timeout: options.timeoutMs ?? REQUEST_TIMEOUT_MS },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${options.method ?? 'GET'} ${url}: no answer in time`)));
    req.on('error', reject);
    req.end(payload);
  });
}

async function postJson<T>(url: string, json: unknown, expected = 201): Promise<T> {
  const reply = await request(url, { method: 'POST', json });
  if (reply.status !== expected) {
    throw new Error(`POST ${url} answered ${reply.status}: ${reply.body.slice(0, 300)}`);
  }
  return JSON.parse(reply.body) as T;
}

interface QueryComment {
  id: string;
  content: string;
  status: string;
}
type QueryPosts = Record<string, { id: string; title: string; comments: QueryComment[] }>;

/**
 * Reads query's `GET /posts` the way a browser revalidates: with the last ETag, so an unchanged view costs
 * a 304 and no parsing (a query without ETags is simply read in full each time).
 */
class QueryView {
  posts: QueryPosts = {};
  private etag: string | undefined;
  polls = 0;

  constructor(private readonly url: string) {}

  /** One `GET /posts`; true if the view changed. */
  async poll(): Promise<boolean> {
    this.polls++;
    const reply = await request(`${this.url}/posts`, {
      headers: this.etag ? { 'if-none-match': this.etag } : {},
    });
    if (reply.status === 304) return false;
    if (reply.status !== 200) throw new Error(`GET ${this.url}/posts answered ${reply.status}`);
    this.posts = JSON.parse(reply.body) as QueryPosts;
    const etag = reply.headers.etag;
    this.etag = typeof etag === 'string' ? etag : undefined;
    return true;
  }
}

/**
 * Follows query's `GET /posts/live` (server-sent events, one message per event query applies) and notes
 * when each comment's CommentUpdated arrived: the moment query shows the final status to its clients.
 */
class LiveView {
  private readonly finals = new Map<string, { status: string; at: number }>();
  private readonly waiters = new Map<string, () => void>();
  private closed = false;

  private constructor(private readonly req: http.ClientRequest) {}

  static connect(queryUrl: string): Promise<LiveView> {
    return new Promise((resolve, reject) => {
      const req = http.get(`${queryUrl}/posts/live`, { headers: { accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`GET ${queryUrl}/posts/live answered ${res.statusCode}`));
        }
        const view = new LiveView(req);
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          let end: number;
          while ((end = buffered.indexOf('\n\n')) >= 0) {
            view.onMessage(buffered.slice(0, end));
            buffered = buffered.slice(end + 2);
          }
        });
        resolve(view);
      });
      req.on('error', (err) => reject(err));
    });
  }

  private onMessage(message: string): void {
    const at = now();
    if (/^event: /m.test(message)) return; // the snapshot sent on connect; events come as plain messages
    const data = message
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => line.slice(6))
      .join('\n');
    if (!data) return; // a heartbeat comment
    const event = JSON.parse(data) as { type: string; data: { id?: string; status?: string } };
    if (event.type !== 'CommentUpdated' || !event.data.id || !event.data.status) return;
    if (event.data.status === 'pending') return;
    this.finals.set(event.data.id, { status: event.data.status, at });
    this.waiters.get(event.data.id)?.();
  }

  /** The comment's final status and when query pushed it; throws after `timeoutMs`. */
  async finalStatus(commentId: string, timeoutMs: number): Promise<{ status: string; at: number }> {
    const known = this.finals.get(commentId);
    if (known) return known;
    if (this.closed) throw new Error('the live stream of query is closed');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(commentId);
        reject(new Error(`comment ${commentId} was not pushed final by query after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(commentId, () => {
        clearTimeout(timer);
        this.waiters.delete(commentId);
        resolve();
      });
    });
    return this.finals.get(commentId)!;
  }

  close(): void {
    this.closed = true;
    this.req.destroy();
  }
}

// ---------------------------------------------------------------------------------------------- helpers

const now = () => performance.now();
interface Distribution {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles. */
function distribution(values: number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number) =>
    sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
  return {
    count: sorted.length,
    p50: round(rank(0.5)),
    p90: round(rank(0.9)),
    p99: round(rank(0.99)),
    max: round(sorted.at(-1) ?? Number.NaN),
    mean: round(sorted.reduce((sum, v) => sum + v, 0) / sorted.length),
  };
}

const round = (value: number, digits = 2) => Math.round(value * 10 ** digits) / 10 ** digits;

/** Runs `fn` over `items` with at most `concurrency` at a time. */
async function pool<T, R>(
  items: T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

const moderated = (content: string) => (content.includes('orange') ? 'rejected' : 'approved');

async function createPost(urls: Urls, title: string): Promise<string> {
  const post = await postJson<{ id: string }>(`${urls.posts}/posts/create`, { title });
  return post.id;
}

// ---------------------------------------------------------------------------------------------- 1. latency

/**
 * How the latency phase sees a comment become final in query: `push`, from query's live stream
 * (`GET /posts/live`, server-sent events sent as query applies each event: what the client shows), or
 * `poll`, by reading `GET /posts` in a tight loop (the course's only way; the polls are load of their own).
 */
type Observer = 'push' | 'poll';

interface LatencyResult {
  observer: Observer;
  settings: Settings['latency'] & { pollIntervalMs: number };
  /** From the 201 of `POST /posts/:id/comments` to the final status visible in query's `GET /posts`. */
  afterCreatedMs: Distribution;
  /** The same, from the moment the POST was sent (so it includes the create itself). */
  fromRequestMs: Distribution;
  /** The POST alone (sent to 201). */
  createMs: Distribution;
  /** `GET /posts` polls per comment, on average. */
  pollsPerSample: number;
  wrongStatus: number;
}

async function measureLatency(
  urls: Urls,
  settings: Settings['latency'],
  observer: Observer,
  pollIntervalMs: number,
  onSample?: (sample: WallTimes) => void,
): Promise<LatencyResult> {
  const view = new QueryView(urls.query);
  const live = observer === 'push' ? await LiveView.connect(urls.query) : undefined;
  try {
    return await measureLatencyWith(view, live, urls, settings, pollIntervalMs, onSample);
  } finally {
    live?.close();
  }
}

async function measureLatencyWith(
  view: QueryView,
  live: LiveView | undefined,
  urls: Urls,
  settings: Settings['latency'],
  pollIntervalMs: number,
  onSample?: (sample: WallTimes) => void,
): Promise<LatencyResult> {
  const afterCreated: number[] = [];
  const fromRequest: number[] = [];
  const create: number[] = [];
  let wrongStatus = 0;
  let postId = '';
  const total = settings.warmup + settings.samples;
  const pollsBefore = view.polls;
  for (let i = 0; i < total; i++) {
    // A fresh post every so often keeps the observed view small.
    if (i % settings.commentsPerPost === 0)
      postId = await createPost(urls, `latency ${i / settings.commentsPerPost}`);
    const content = i % settings.everyNthOrange === 2 ? `latency ${i}: an orange` : `latency ${i}: fine`;
    const sent = now();
    const reply = await request(`${urls.comments}/posts/${postId}/comments`, {
      method: 'POST',
      json: { content },
    });
    const created = now();
    if (reply.status !== 201)
      throw new Error(`POST /posts/${postId}/comments answered ${reply.status}: ${reply.body}`);
    const comments = JSON.parse(reply.body) as QueryComment[];
    const id = comments.find((c) => c.content === content)?.id;
    if (!id) throw new Error(`the 201 of POST /posts/${postId}/comments does not list the new comment`);

    let status: string | undefined;
    const deadline = created + REQUEST_TIMEOUT_MS;
    // Pushed: query's stream says when it applied the comment's CommentUpdated (perhaps even before the
    // 201 reached us, which counts as 0).
    const pushed = live ? await live.finalStatus(id, REQUEST_TIMEOUT_MS) : undefined;
    if (pushed) status = pushed.status;
    // Polled: a tight sequential loop on GET /posts until the comment's final status shows.
    while (!live) {
      if (await view.poll()) {
        status = view.posts[postId]?.comments.find((c) => c.id === id)?.status;
        if (status !== undefined && status !== 'pending') break;
      }
      if (now() > deadline)
        throw new Error(`comment ${id} was not final in query after ${REQUEST_TIMEOUT_MS} ms`);
      if (pollIntervalMs > 0) await sleep(pollIntervalMs);
    }
    const visible = pushed ? Math.max(pushed.at, created) : now();
    onSample?.({
      sent: wall(sent),
      created: wall(created),
      visible: wall(visible),
      warmup: i < settings.warmup,
    });
    if (status !== moderated(content)) wrongStatus++;
    if (i >= settings.warmup) {
      afterCreated.push(visible - created);
      fromRequest.push(visible - sent);
      create.push(created - sent);
    }
  }
  return {
    observer: live ? 'push' : 'poll',
    settings: { ...settings, pollIntervalMs },
    afterCreatedMs: distribution(afterCreated),
    fromRequestMs: distribution(fromRequest),
    createMs: distribution(create),
    pollsPerSample: round((view.polls - pollsBefore) / total, 1),
    wrongStatus,
  };
}

/** One latency sample on the wall clock (ms since the epoch), to line up with the services' log times. */
interface WallTimes {
  sent: number;
  created: number;
  visible: number;
  warmup: boolean;
}

const wall = (monotonic: number) => performance.timeOrigin + monotonic;

interface LogLine {
  service: string;
  line: string;
}

interface HopTiming {
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
function hopTimings(lines: LogLine[], samples: WallTimes[]): HopTiming[] {
  const stored = new Map<string, { seq: number; at: number }>();
  const created: string[] = [];
  const applied = new Map<string, number>();
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
      stored.set(record.id, { seq: record.seq, at });
      if (record.type === 'CommentCreated') created.push(record.id);
    } else if (record.msg === 'event applied') {
      applied.set(`${service}:${record.seq}`, at);
    }
  }
  const hops: [string, number[]][] = [
    ['POST sent → CommentCreated stored by the bus', []],
    ['  → applied by comments (read your writes)', []],
    ['  → 201 received', []],
    ['CommentCreated stored → applied by moderation', []],
    ['  → CommentModerated stored', []],
    ['  → applied by comments', []],
    ['  → CommentUpdated stored', []],
    ['  → applied by query', []],
    ['  → seen by the bench (the live stream)', []],
    ['201 received → seen (the latency figure)', []],
  ];
  samples.forEach((sample, n) => {
    const rootId = created[n];
    if (sample.warmup || rootId === undefined) return;
    const createdEvent = stored.get(rootId);
    const moderatedEvent = stored.get(`${rootId}/CommentModerated`);
    const updatedEvent = stored.get(`${rootId}/CommentModerated/CommentUpdated`);
    if (!createdEvent || !moderatedEvent || !updatedEvent) return;
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
    if ([...times, ...chain].some((t) => t === undefined)) return;
    const t = times as number[];
    const c = chain as number[];
    const spans = [t[1]! - t[0]!, t[2]! - t[1]!, t[3]! - t[2]!];
    for (let i = 1; i < c.length; i++) spans.push(c[i]! - c[i - 1]!);
    spans.push(sample.visible - sample.created);
    spans.forEach((span, i) => hops[i]![1].push(span));
  });
  return hops.map(([hop, values]) => ({
    hop,
    meanMs: values.length ? round(values.reduce((sum, v) => sum + v, 0) / values.length, 2) : Number.NaN,
    p50Ms: values.length ? distribution(values).p50 : Number.NaN,
  }));
}

// ---------------------------------------------------------------------------------------------- 2. throughput

interface ThroughputResult {
  settings: Settings['throughput'];
  /** Comments created (201), moderated and final in query, per second from the first POST to the last final. */
  perSecond: number;
  created: number;
  final: number;
  /** Answers other than 201, by status (`error` for no answer at all). */
  errors: Record<string, number>;
  errorCount: number;
  /** 201s per second while the writers ran. */
  createdPerSecond: number;
  /** From the first POST to the last comment final in query. */
  elapsedMs: number;
  /** From the writers' end to the last comment final in query. */
  drainMs: number;
  createMs: Distribution;
  complete: boolean;
}

async function measureThroughput(urls: Urls, settings: Settings['throughput']): Promise<ThroughputResult> {
  const run = randomUUID().slice(0, 8);
  const prefix = `tput ${run} `;
  const postIds = await pool(
    Array.from({ length: settings.posts }, (_, i) => i),
    8,
    (i) => createPost(urls, `throughput ${run} ${i}`),
  );

  let counter = 0;
  let created = 0;
  const errors: Record<string, number> = {};
  const createMs: number[] = [];
  const start = now();
  const writersEnd = start + settings.durationMs;
  const writer = async () => {
    while (now() < writersEnd) {
      const n = counter++;
      const postId = postIds[n % postIds.length]!;
      const content = n % 5 === 2 ? `${prefix}${n} orange` : `${prefix}${n}`;
      const sent = now();
      try {
        // The 201 carries the post's whole comments array: read, not parsed (the content identifies ours).
        const reply = await request(`${urls.comments}/posts/${postId}/comments`, {
          method: 'POST',
          json: { content },
        });
        if (reply.status === 201) {
          created++;
          createMs.push(now() - sent);
        } else errors[reply.status] = (errors[reply.status] ?? 0) + 1;
      } catch {
        errors.error = (errors.error ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: settings.writers }, writer));
  const writersDone = now();

  // Then until every comment of this run is final in query.
  const view = new QueryView(urls.query);
  const drainDeadline = writersDone + settings.drainTimeoutMs;
  let final = 0;
  let complete = false;
  let lastVisible = writersDone;
  for (;;) {
    await view.poll();
    const polled = now();
    let pending = 0;
    final = 0;
    for (const postId of postIds) {
      for (const comment of view.posts[postId]?.comments ?? []) {
        if (!comment.content.startsWith(prefix)) continue;
        if (comment.status === 'pending') pending++;
        else final++;
      }
    }
    if (pending === 0 && final >= created) {
      complete = true;
      lastVisible = polled;
      break;
    }
    if (polled > drainDeadline) {
      lastVisible = polled;
      break;
    }
    await sleep(20);
  }
  const elapsedMs = lastVisible - start;
  const errorCount = Object.values(errors).reduce((sum, n) => sum + n, 0);
  return {
    settings,
    perSecond: round(final / (elapsedMs / 1000), 1),
    created,
    final,
    errors,
    errorCount,
    createdPerSecond: round(created / ((writersDone - start) / 1000), 1),
    elapsedMs: round(elapsedMs, 0),
    drainMs: round(lastVisible - writersDone, 0),
    createMs: distribution(createMs),
    complete,
  };
}

// ---------------------------------------------------------------------------------------------- 3. GET /posts rate

interface AutocannonResult {
  requests: { average: number; total: number };
  latency: { average: number; p50: number; p99: number; max: number };
  throughput: { average: number };
  duration: number;
  errors: number;
  timeouts: number;
  non2xx: number;
  '2xx': number;
}

interface AutocannonOptions {
  url: string;
  connections: number;
  duration: number;
  pipelining?: number;
  headers?: Record<string, string>;
}

type Autocannon = (options: AutocannonOptions) => PromiseLike<AutocannonResult>;

interface RateFigures {
  rps: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  mbPerSecond: number;
  requests: number;
  non2xx: number;
  errors: number;
}

interface RateResult {
  settings: Settings['rps'];
  posts: number;
  comments: number;
  bodyBytes: number;
  contentType: string;
  query: RateFigures;
  bare: RateFigures;
  ratio: number;
}

async function cannon(url: string, settings: Settings['rps']): Promise<RateFigures> {
  const require = createRequire(import.meta.url);
  const autocannon = require('autocannon') as Autocannon;
  const result = await autocannon({ url, connections: settings.connections, duration: settings.durationS });
  return {
    rps: round(result['2xx'] / result.duration, 0),
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
    mbPerSecond: round(result.throughput.average / 1e6, 1),
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}

async function measureRate(urls: Urls, settings: Settings['rps']): Promise<RateResult> {
  const run = randomUUID().slice(0, 8);
  // 500 posts with a couple of comments each (one in five mentions an orange), 16 at a time.
  const postIds = await pool(
    Array.from({ length: settings.posts }, (_, i) => i),
    16,
    async (i) => {
      const postId = await createPost(urls, `Post ${i} of run ${run}`);
      for (let c = 0; c < settings.commentsPerPost; c++) {
        const content = (i * settings.commentsPerPost + c) % 5 === 2 ? `an orange, ${c}` : `a comment, ${c}`;
        await postJson(`${urls.comments}/posts/${postId}/comments`, { content });
      }
      return postId;
    },
  );
  // Until query shows them all, final.
  const view = new QueryView(urls.query);
  const deadline = now() + 30_000;
  for (;;) {
    await view.poll();
    const ready = postIds.every((id) => {
      const comments = view.posts[id]?.comments;
      return comments?.length === settings.commentsPerPost && comments.every((c) => c.status !== 'pending');
    });
    if (ready) break;
    if (now() > deadline) throw new Error('query did not show every post and comment within 30 s');
    await sleep(50);
  }

  // The bytes a browser gets, once, for the bare server to send.
  const reply = await request(`${urls.query}/posts`);
  if (reply.status !== 200) throw new Error(`GET /posts answered ${reply.status}`);
  const contentType = String(reply.headers['content-type'] ?? 'application/json');
  const posts = JSON.parse(reply.body) as QueryPosts;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'blog-bench-bare-'));
  const bodyFile = path.join(dir, 'posts.json');
  writeFileSync(bodyFile, reply.body);
  const bodyBytes = Buffer.byteLength(reply.body);

  const bare = await startBareServer(bodyFile, contentType);
  try {
    say(`  autocannon ${urls.query}/posts (${settings.connections} connections, ${settings.durationS} s)`);
    const query = await cannon(`${urls.query}/posts`, settings);
    say(`  autocannon bare node:http server, same bytes`);
    const bareFigures = await cannon(bare.url, settings);
    return {
      settings,
      posts: Object.keys(posts).length,
      comments: Object.values(posts).reduce((sum, post) => sum + post.comments.length, 0),
      bodyBytes,
      contentType,
      query,
      bare: bareFigures,
      ratio: round(query.rps / bareFigures.rps, 3),
    };
  } finally {
    await stopChild(bare.child);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The bare server runs in its own process, like query, so neither shares a core with autocannon's loop. */
async function startBareServer(
  bodyFile: string,
  contentType: string,
): Promise<{ url: string; child: ChildProcess }> {
  const child = fork(fileURLToPath(import.meta.url), ['--serve-bare', bodyFile, contentType], {
    execArgv: [],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message: { port?: number }) =>
      message.port ? resolve(message.port) : reject(new Error('bare server: no port')),
    );
    child.once('exit', (code) => reject(new Error(`bare server exited (${code})`)));
  });
  return { url: `http://127.0.0.1:${port}/posts`, child };
}

/** `--serve-bare FILE TYPE`: the ceiling, node:http sending the same bytes with the same Content-Type. */
function serveBare(bodyFile: string, contentType: string): void {
  const body = readFileSync(bodyFile);
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': contentType, 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 65_000; // as the services (common/src/http.ts)
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    process.send?.({ port });
  });
  process.on('disconnect', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------- 4. start on a long log

interface StoreModule {
  EventStore: new (dataDir: string) => {
    append(event: { type: string; data: Record<string, unknown>; id?: string }): { seq: number };
    setCursor(subscriber: string, seq: number): void;
    headSeq(): number;
    close(): void;
  };
}

interface ReplayResult {
  events: number;
  posts: number;
  comments: number;
  /** Building the log with the bus's own store module (not part of the figure). */
  buildMs: number;
  databaseBytes: number;
  /** From spawning query to its first `GET /readyz` 200. */
  readyMs: number;
  /** Of which: from the spawn to query's "listening" line (Node's start, loading modules), when logged. */
  bootMs: number | null;
  /** And from "listening" to ready: fetching and applying the log. */
  catchUpMs: number | null;
  /** What query served right after: every post and comment, all final. */
  verified: boolean;
}

/** A type, not an interface: it then fits the transport's `OutgoingEvent` (an index signature). */
type LogEventIn = {
  type: string;
  data: Record<string, unknown>;
  id: string;
};

interface BuiltLog {
  posts: number;
  comments: number;
  rejected: number;
}

/**
 * A realistic log of `events` events, handed to `append` in order: posts, and per comment its
 * CommentCreated, CommentModerated and CommentUpdated (ids as the services derive them), comments spread
 * over the posts created so far, one in five rejected.
 */
function realisticLog(events: number, append: (event: LogEventIn) => void): BuiltLog {
  const comments = Math.floor((events - Math.round(events / 100)) / 3);
  const posts = events - 3 * comments;
  const random = mulberry32(42);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let rejected = 0;
  let postsMade = 0;
  const newPost = () => {
    const id = hex(postsMade++);
    append({ type: 'PostCreated', data: { id, title: `Post number ${postsMade}` }, id: randomUUID() });
  };
  newPost();
  for (let c = 0; c < comments; c++) {
    // The posts appear at an even pace among the comments.
    while (postsMade < posts && postsMade <= (c * posts) / comments) newPost();
    const postId = hex(Math.floor(random() * postsMade));
    const id = `c${hex(c)}`;
    const content = c % 5 === 2 ? `comment ${c} about an orange` : `comment ${c}, a fine one`;
    const status = moderated(content);
    if (status === 'rejected') rejected++;
    const createdId = randomUUID();
    append({ type: 'CommentCreated', data: { id, content, postId, status: 'pending' }, id: createdId });
    const moderatedId = `${createdId}/CommentModerated`;
    append({ type: 'CommentModerated', data: { id, postId, status, content }, id: moderatedId });
    append({
      type: 'CommentUpdated',
      data: { id, status, postId, content },
      id: `${moderatedId}/CommentUpdated`,
    });
  }
  while (postsMade < posts) newPost();
  return { posts, comments, rejected };
}

/** The log in the bus's SQLite store, written with the bus's own store module. */
async function buildLog(dataDir: string, events: number): Promise<BuiltLog> {
  const storeUrl = pathToFileURL(path.join(ROOT_DIR, 'event-bus', 'dist', 'store.js')).href;
  const { EventStore } = (await import(storeUrl)) as StoreModule;
  const store = new EventStore(dataDir);
  let built: BuiltLog | undefined;
  const write = () => (built = realisticLog(events, (event) => store.append(event)));
  // One transaction instead of one commit per event, when the store lets us reach its database.
  const db = (store as unknown as { db?: { transaction?: (fn: () => void) => () => void } }).db;
  if (typeof db?.transaction === 'function') db.transaction(write)();
  else write();
  const head = store.headSeq();
  if (head !== events) throw new Error(`the built log holds ${head} events, not ${events}`);
  // The bus has already delivered all of it to query (as after a restart of query): it delivers nothing old.
  store.setCursor('query', head);
  store.close();
  return built!;
}

/** Every file's size under `dir`, in bytes. */
function bytesUnder(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(path.join(entry.parentPath, entry.name)).size, 0);
}

/**
 * The log in a JetStream stream on a nats-server of its own (store in `<dataDir>/nats`), published through
 * the services' own NatsTransport, a thousand at a time (pipelined on one connection, stored in order).
 */
async function buildStream(dataDir: string, events: number) {
  const storeDir = path.join(dataDir, 'nats');
  const server = await startNatsServer({ storeDir });
  const stream = 'blog';
  const transport = new NatsTransport({ url: server.url, stream, timeoutMs: 30_000 });
  try {
    const all: LogEventIn[] = [];
    const log = realisticLog(events, (event) => all.push(event));
    for (let i = 0; i < all.length; i += 1000) {
      await Promise.all(all.slice(i, i + 1000).map((event) => transport.publish(event)));
    }
    const head = await transport.headSeq();
    if (head !== events) throw new Error(`the built stream holds ${head} events, not ${events}`);
    return { log, server, stream, bytes: bytesUnder(storeDir) };
  } catch (err) {
    await server.stop();
    throw err;
  } finally {
    await transport.close();
  }
}

async function measureReplay(
  settings: Settings['replay'],
  logLevel: string,
  transport: Pick<SystemOptions, 'transport'>,
): Promise<ReplayResult> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'blog-bench-replay-'));
  const children: ChildProcess[] = [];
  const natsServers: { stop(): Promise<void> }[] = [];
  try {
    const [busPort, queryPort] = await freePorts(2);
    const busUrl = `http://127.0.0.1:${busPort}`;
    const queryUrl = `http://127.0.0.1:${queryPort}`;
    const built = now();
    let log: BuiltLog;
    let databaseBytes: number;
    /** Where query reads the log: the bus, or (nats) the stream, with no bus at all. */
    let source: Record<string, string>;
    if (transport.transport === 'nats') {
      const stream = await buildStream(dataDir, settings.events);
      natsServers.push(stream.server);
      log = stream.log;
      databaseBytes = stream.bytes;
      source = { EVENT_TRANSPORT: 'nats', NATS_URL: stream.server.url, NATS_STREAM: stream.stream };
    } else {
      log = await buildLog(dataDir, settings.events);
      databaseBytes = statSync(path.join(dataDir, 'events.db')).size;
      source = { EVENT_TRANSPORT: 'http', EVENT_BUS_URL: busUrl };
    }
    const buildMs = now() - built;

    if (transport.transport !== 'nats') {
      const bus = spawnService('event-bus', {
        PORT: String(busPort),
        EVENT_TRANSPORT: 'http',
        DATA_DIR: dataDir,
        SUBSCRIBERS: `query=${queryUrl}/events`,
        LOG_LEVEL: logLevel,
      });
      children.push(bus.child);
      await pollReady(busUrl, bus, 30_000, 20);
    }

    const spawned = now();
    const query = spawnService('query', {
      PORT: String(queryPort),
      ...source,
      LOG_LEVEL: logLevel,
    });
    children.push(query.child);
    await pollReady(queryUrl, query, settings.readyTimeoutMs, 2);
    const readyMs = now() - spawned;
    const bootMs = query.listeningAt === undefined ? null : round(query.listeningAt - spawned, 0);

    const reply = await request(`${queryUrl}/posts`, { timeoutMs: 30_000 });
    const posts = JSON.parse(reply.body) as QueryPosts;
    let comments = 0;
    let rejected = 0;
    let pending = 0;
    for (const post of Object.values(posts)) {
      comments += post.comments.length;
      for (const comment of post.comments) {
        if (comment.status === 'rejected') rejected++;
        if (comment.status === 'pending') pending++;
      }
    }
    const verified =
      reply.status === 200 &&
      Object.keys(posts).length === log.posts &&
      comments === log.comments &&
      rejected === log.rejected &&
      pending === 0;
    if (!verified) {
      say(
        `  query after start: ${Object.keys(posts).length}/${log.posts} posts, ${comments}/${log.comments} ` +
          `comments, ${rejected}/${log.rejected} rejected, ${pending} pending`,
      );
    }
    return {
      events: settings.events,
      posts: log.posts,
      comments: log.comments,
      buildMs: round(buildMs, 0),
      databaseBytes,
      readyMs: round(readyMs, 0),
      bootMs,
      catchUpMs: bootMs === null ? null : round(readyMs - bootMs, 0),
      verified,
    };
  } finally {
    await Promise.all(children.map(stopChild));
    await Promise.all(natsServers.map((server) => server.stop()));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

interface Spawned {
  name: string;
  child: ChildProcess;
  output: string[];
  /** When its "listening" log line arrived (at LOG_LEVEL info or lower): the end of its boot. */
  listeningAt: number | undefined;
}

/** `node <service>/dist/index.js`, as processes.ts runs it; its output kept for an error message. */
function spawnService(name: string, env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, ['dist/index.js'], {
    cwd: path.join(ROOT_DIR, name),
    env: { ...process.env, ...profilerEnv('replay'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const spawned: Spawned = { name, child, output: [], listeningAt: undefined };
  const keep = (chunk: Buffer) => {
    const text = chunk.toString();
    if (spawned.listeningAt === undefined && text.includes(`"msg":"${name} listening"`))
      spawned.listeningAt = now();
    spawned.output.push(text);
    if (spawned.output.length > 50) spawned.output.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return spawned;
}

/** Polls `/readyz` every `intervalMs` (a small interval: the time to ready is the figure). */
async function pollReady(
  url: string,
  spawned: Spawned,
  timeoutMs: number,
  intervalMs: number,
): Promise<void> {
  const deadline = now() + timeoutMs;
  for (;;) {
    if (spawned.child.exitCode !== null || spawned.child.signalCode !== null) {
      throw new Error(`${spawned.name} exited during start:\n${spawned.output.join('').slice(-2000)}`);
    }
    try {
      const reply = await request(`${url}/readyz`, { timeoutMs: 5000 });
      if (reply.status === 200) return;
    } catch {
      // not listening yet
    }
    if (now() > deadline) {
      throw new Error(
        `${spawned.name} not ready after ${timeoutMs} ms:\n${spawned.output.join('').slice(-2000)}`,
      );
    }
    await sleep(intervalMs);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------------------------------------- 5. the client

interface ClientResult {
  settings: Settings['client'];
  /** Each built JavaScript file of client/dist/assets, raw and gzipped (node:zlib, default level). */
  jsFiles: Array<{ file: string; bytes: number; gzipBytes: number }>;
  jsGzipKb: number;
  /** Why the page loads were not measured (no Chromium, no router), or null. */
  skipped: string | null;
  posts: number;
  /** Navigation start → the post list drawn with every post's card, one per load (cold cache). */
  loadsMs: number[];
  loadMedianMs: number | null;
}

/** The size a browser downloads: every JavaScript file of the build, gzipped, in kB (1000 bytes). */
function clientJsSize(): Pick<ClientResult, 'jsFiles' | 'jsGzipKb'> {
  const dir = path.join(ROOT_DIR, 'client', 'dist', 'assets');
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.js'));
  } catch {
    throw new Error(`${path.relative(ROOT_DIR, dir)} is missing: run \`npm run build\` first`);
  }
  if (names.length === 0)
    throw new Error(`no JavaScript in ${path.relative(ROOT_DIR, dir)}: run \`npm run build\``);
  const jsFiles = names.map((file) => {
    const content = readFileSync(path.join(dir, file));
    return { file, bytes: content.length, gzipBytes: gzipSync(content).length };
  });
  return { jsFiles, jsGzipKb: round(jsFiles.reduce((sum, f) => sum + f.gzipBytes, 0) / 1000, 1) };
}

async function measureClient(
  urls: Urls | undefined,
  routerUrl: string | undefined,
  settings: Settings['client'],
): Promise<ClientResult> {
  const size = clientJsSize();
  const skip = (skipped: string): ClientResult => ({
    settings,
    ...size,
    skipped,
    posts: 0,
    loadsMs: [],
    loadMedianMs: null,
  });
  const missing = chromiumMissing();
  if (missing) return skip(missing);
  if (!urls || !routerUrl)
    return skip('the page loads need the router the bench starts (not with --posts/--query URLs)');

  // A page worth drawing: the posts the phases before made, or at least `minPosts`.
  const view = new QueryView(urls.query);
  await view.poll();
  const missingPosts = Math.max(0, settings.minPosts - Object.keys(view.posts).length);
  await pool(
    Array.from({ length: missingPosts }, (_, i) => i),
    8,
    (i) => createPost(urls, `Client post ${i}`),
  );
  await view.poll();
  const posts = Object.keys(view.posts).length;

  const browser = await launchChromium();
  try {
    const loadsMs: number[] = [];
    for (let i = 0; i < settings.loads; i++) {
      const page = await browser.context.newPage();
      // Every load as a first visit: nothing from the cache.
      const cdp = await browser.context.newCDPSession(page);
      await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
      // Noted in the page (a string: this file is not compiled for the DOM), on the animation frame the
      // last card is there: ms since navigation start. An init script, not waitForFunction, whose
      // predicate is an eval the app's Content-Security-Policy forbids (no 'unsafe-eval').
      await page.addInitScript(
        `(() => { const tick = () => { if (document.querySelectorAll('[data-testid="post-list"] [data-testid="post-card"]').length >= ${posts}) window.__drawnAt = performance.now(); else requestAnimationFrame(tick); }; requestAnimationFrame(tick); })()`,
      );
      await page.goto(routerUrl, { waitUntil: 'commit' });
      const deadline = Date.now() + 30_000;
      let drawnAt: unknown;
      while ((drawnAt = await page.evaluate('window.__drawnAt')) === undefined) {
        if (Date.now() > deadline) throw new Error(`the ${posts} posts were not drawn within 30 s`);
        await sleep(10);
      }
      loadsMs.push(round(drawnAt as number, 1));
      await page.close();
    }
    return { settings, ...size, skipped: null, posts, loadsMs, loadMedianMs: distribution(loadsMs).p50 };
  } finally {
    await browser.close();
  }
}

// ---------------------------------------------------------------------------------------------- CPU

/** CPU time (user + system) a process has used, from /proc (Linux); undefined elsewhere. */
function processCpuMs(pid: number | undefined): number | undefined {
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

type CpuSnapshot = Record<string, number>;

/** The CPU time used so far by each service the bench started, and by the bench itself. */
function cpuSnapshot(system: System | undefined): CpuSnapshot {
  const snapshot: CpuSnapshot = {};
  for (const service of system?.status() ?? []) {
    const ms = processCpuMs(service.pid);
    if (ms !== undefined) snapshot[service.name] = ms;
  }
  const own = process.cpuUsage();
  snapshot.bench = (own.user + own.system) / 1000;
  return snapshot;
}

/** CPU milliseconds per comment, by process, between two snapshots (only when the bench started the system). */
function cpuPerComment(
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
  return perComment;
}

// ---------------------------------------------------------------------------------------------- profiles

/**
 * `--cpu-prof DIR`: Node 20 refuses `--cpu-prof` in NODE_OPTIONS, and processes.ts spawns `node dist/index.js`
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

function enableProfiler(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'preload.mjs'), PROFILER_PRELOAD);
  profileDir = dir;
}

/** The environment that makes a service profile itself (nothing when --cpu-prof is not given). */
function profilerEnv(tag = ''): Record<string, string> {
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

interface ProfileSummary {
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

function summarizeProfiles(dir: string): ProfileSummary[] {
  return readdirSync(dir)
    .filter((file) => file.endsWith('.cpuprofile'))
    .sort()
    .map((file) => summarizeProfile(path.join(dir, file)));
}

function formatProfiles(summaries: ProfileSummary[]): string {
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

// ---------------------------------------------------------------------------------------------- the run

type Figures = {
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  latencyPolledP50Ms: number;
  latencyPolledP99Ms: number;
  throughputPerSec: number;
  queryRps: number;
  bareRps: number;
  queryToBareRatio: number;
  readyMs: number;
  clientJsGzipKb: number;
  clientLoadMs: number;
};

interface Results {
  date: string;
  command: string;
  mode: 'full' | 'quick';
  machine: {
    cpus: number;
    cpuModel: string;
    memoryGB: number;
    node: string;
    platform: string;
    /** 1-minute load average before and after the run: others' work on the machine skews every figure. */
    loadBefore: number;
    loadAfter: number;
  };
  system: string;
  /** How the services exchanged events: `http` (the event-bus) or `nats` (NATS JetStream). */
  transport: string;
  logLevel: string;
  phases: Phase[];
  /** The headline figures: every one a finite positive number when the run succeeded (null: phase not run). */
  figures: { [K in keyof Figures]: number | null };
  /** Counts that should be 0. */
  errors: {
    throughputNon201: number;
    throughputNotFinal: number;
    latencyWrongStatus: number;
    queryNon2xx: number;
    bareNon2xx: number;
    replayNotVerified: number;
    deadLetters: number;
  };
  targets: typeof TARGETS;
  course: typeof COURSE;
  details: {
    latency: (LatencyResult & { cpuMsPerComment: Record<string, number> | null }) | null;
    latencyPolled: (LatencyResult & { cpuMsPerComment: Record<string, number> | null }) | null;
    rate: RateResult | null;
    throughput: (ThroughputResult & { cpuMsPerComment: Record<string, number> | null }) | null;
    replay: ReplayResult | null;
    client: ClientResult | null;
    subscribers: unknown;
    profiles: ProfileSummary[] | null;
    hops: HopTiming[] | null;
    totalSeconds: number;
  };
}

async function busSubscribers(busUrl: string): Promise<{ deadLetters: number; subscribers: unknown }> {
  try {
    const reply = await request(`${busUrl}/subscribers`, { headers: busHeaders() });
    if (reply.status !== 200) return { deadLetters: 0, subscribers: null };
    const subscribers = JSON.parse(reply.body) as { deadLetters?: number }[];
    return { deadLetters: subscribers.reduce((sum, s) => sum + (s.deadLetters ?? 0), 0), subscribers };
  } catch {
    return { deadLetters: 0, subscribers: null }; // a course-original bus has no /subscribers
  }
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  const settings = options.quick ? QUICK : FULL;
  const began = now();
  const loadBefore = os.loadavg()[0] ?? 0;
  if (options.cpuProfDir) enableProfiler(options.cpuProfDir);
  let system: System | undefined;
  // --hops: the services' log lines during the latency phase, and the bench's own times of each sample.
  const logLines: LogLine[] = [];
  const wallSamples: WallTimes[] = [];
  let collecting = false;
  const stopAll = async () => {
    await system?.stop();
    agent.destroy();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      say(`${signal}: stopping`);
      void stopAll().finally(() => process.exit(130));
    });
  }

  try {
    const phases = options.phases;
    const needsSystem =
      phases.has('latency') || phases.has('rate') || phases.has('throughput') || phases.has('client');
    let urls: Urls | undefined = options.urls;
    if (urls) {
      say(`Measuring the system at ${urls.posts}, ${urls.comments}, ${urls.query}, bus ${urls.bus}`);
    } else if (needsSystem) {
      const on = options.transport.transport === 'nats' ? ', on NATS JetStream' : '';
      say(`Starting the five services (LOG_LEVEL=${options.logLevel}, a fresh temporary event log${on})...`);
      system = await startSystem({
        ...options.transport,
        eventBusToken: eventBusToken(),
        quiet: true,
        host: '127.0.0.1',
        env: { LOG_LEVEL: options.logLevel, ...profilerEnv() },
        // The client phase loads the app through the router, as a browser at localhost:3000 would.
        router: phases.has('client'),
        onStatus: (message) => say(message),
        onLine: options.hops
          ? (service, line) => {
              if (collecting) logLines.push({ service, line });
            }
          : undefined,
      });
      urls = {
        posts: system.urls.posts,
        comments: system.urls.comments,
        query: system.urls.query,
        bus: system.urls['event-bus'],
      };
    }

    const s = settings;
    let latency: Results['details']['latency'] = null;
    let latencyPolled: Results['details']['latencyPolled'] = null;
    let rate: RateResult | null = null;
    let throughput: Results['details']['throughput'] = null;
    let replay: ReplayResult | null = null;
    let client: ClientResult | null = null;
    let subscribers: { deadLetters: number; subscribers: unknown } = { deadLetters: 0, subscribers: null };
    if (urls && phases.has('latency')) {
      const total = s.latency.warmup + s.latency.samples;
      say(`latency: ${s.latency.warmup} warm-up + ${s.latency.samples} comments, one at a time, seen pushed`);
      let before = cpuSnapshot(system);
      collecting = options.hops;
      const pushed = await measureLatency(urls, s.latency, 'push', 0, (sample) => wallSamples.push(sample));
      collecting = false;
      latency = { ...pushed, cpuMsPerComment: cpuPerComment(before, cpuSnapshot(system), total) };
      say(`latency: the same again, seen by polling GET /posts`);
      before = cpuSnapshot(system);
      const polled = await measureLatency(urls, s.latency, 'poll', options.pollIntervalMs);
      latencyPolled = { ...polled, cpuMsPerComment: cpuPerComment(before, cpuSnapshot(system), total) };
    }
    // Before throughput: its thousands of comments would make every later GET /posts large.
    if (urls && phases.has('rate')) {
      say(`GET /posts rate: ${s.rps.posts} posts with ${s.rps.commentsPerPost} comments each`);
      rate = await measureRate(urls, s.rps);
    }
    // Before throughput too: a page of the rate phase's 500 posts, not of thousands of comments.
    if (phases.has('client')) {
      say(`client: the JavaScript's gzipped size, and ${s.client.loads} page loads in Chromium`);
      client = await measureClient(urls, system?.router?.url, s.client);
      if (client.skipped) say(`client: page loads skipped: ${client.skipped}`);
    }
    if (urls && phases.has('throughput')) {
      say(
        `throughput: ${s.throughput.writers} writers on ${s.throughput.posts} posts ` +
          `for ${s.throughput.durationMs / 1000} s`,
      );
      const before = cpuSnapshot(system);
      const result = await measureThroughput(urls, s.throughput);
      throughput = { ...result, cpuMsPerComment: cpuPerComment(before, cpuSnapshot(system), result.final) };
    }
    if (urls) subscribers = await busSubscribers(urls.bus);
    await system?.stop();
    system = undefined;
    if (phases.has('replay')) {
      say(`start: query on a log of ${s.replay.events.toLocaleString('en')} events`);
      replay = await measureReplay(s.replay, options.logLevel, options.transport);
    }

    const cpus = os.cpus();
    const results: Results = {
      date: new Date().toISOString(),
      command: ['node scripts/dist/bench.js', ...process.argv.slice(2)].join(' '),
      mode: options.quick ? 'quick' : 'full',
      machine: {
        cpus: cpus.length,
        cpuModel: cpus[0]?.model.trim() ?? 'unknown',
        memoryGB: round(os.totalmem() / 2 ** 30, 1),
        node: process.version,
        platform: `${os.platform()} ${os.release()} ${os.arch()}`,
        loadBefore: round(loadBefore, 2),
        loadAfter: round(os.loadavg()[0] ?? 0, 2),
      },
      system: options.urls ? 'given URLs' : 'started by the bench (scripts/src/processes.ts)',
      transport: options.urls ? 'as configured' : (options.transport.transport ?? 'http'),
      logLevel: options.urls ? 'as configured' : options.logLevel,
      phases: [...phases],
      figures: {
        latencyP50Ms: latency?.afterCreatedMs.p50 ?? null,
        latencyP99Ms: latency?.afterCreatedMs.p99 ?? null,
        latencyMaxMs: latency?.afterCreatedMs.max ?? null,
        latencyPolledP50Ms: latencyPolled?.afterCreatedMs.p50 ?? null,
        latencyPolledP99Ms: latencyPolled?.afterCreatedMs.p99 ?? null,
        throughputPerSec: throughput?.perSecond ?? null,
        queryRps: rate?.query.rps ?? null,
        bareRps: rate?.bare.rps ?? null,
        queryToBareRatio: rate?.ratio ?? null,
        readyMs: replay?.readyMs ?? null,
        clientJsGzipKb: client?.jsGzipKb ?? null,
        clientLoadMs: client?.loadMedianMs ?? null,
      },
      errors: {
        throughputNon201: throughput?.errorCount ?? 0,
        throughputNotFinal: throughput ? Math.max(0, throughput.created - throughput.final) : 0,
        latencyWrongStatus: (latency?.wrongStatus ?? 0) + (latencyPolled?.wrongStatus ?? 0),
        queryNon2xx: rate ? rate.query.non2xx + rate.query.errors : 0,
        bareNon2xx: rate ? rate.bare.non2xx + rate.bare.errors : 0,
        replayNotVerified: replay && !replay.verified ? 1 : 0,
        deadLetters: subscribers.deadLetters,
      },
      targets: TARGETS,
      course: COURSE,
      details: {
        latency,
        latencyPolled,
        rate,
        throughput,
        replay,
        client,
        subscribers: subscribers.subscribers,
        profiles: options.cpuProfDir ? summarizeProfiles(options.cpuProfDir) : null,
        // The log lines come from the services the bench started (not from a system given by URL).
        hops: options.hops && latency && logLines.length > 0 ? hopTimings(logLines, wallSamples) : null,
        totalSeconds: round((now() - began) / 1000, 1),
      },
    };

    mkdirSync(path.dirname(options.out), { recursive: true });
    writeFileSync(options.out, `${JSON.stringify(results, null, 2)}\n`);
    const profiles = results.details.profiles ? `\n${formatProfiles(results.details.profiles)}\n` : '';
    const hops = results.details.hops ? `\n${formatHops(results.details.hops)}\n` : '';
    const report = `\n${formatTable(results)}\n${hops}${profiles}`;
    if (options.json) {
      process.stderr.write(report);
      process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
    } else {
      process.stdout.write(report);
    }
    say(`Results written to ${path.relative(process.cwd(), options.out) || options.out}`);
  } finally {
    await stopAll();
  }
}

// ---------------------------------------------------------------------------------------------- the table

const ms = (value: number) => `${value.toFixed(value < 10 ? 2 : 1)} ms`;

function latencyNote(
  lat: LatencyResult & { cpuMsPerComment: Record<string, number> | null },
  cpu: (perComment: Record<string, number> | null) => string,
): string {
  const seen =
    lat.observer === 'push'
      ? 'seen on GET /posts/live'
      : `${lat.pollsPerSample} GET /posts per comment` +
        (lat.settings.pollIntervalMs ? ` (${lat.settings.pollIntervalMs} ms apart)` : '');
  return (
    `latency (${lat.observer}): ${lat.afterCreatedMs.count} samples after ${lat.settings.warmup} warm-up; ` +
    `from sending the POST: p50 ${ms(lat.fromRequestMs.p50)}, p99 ${ms(lat.fromRequestMs.p99)}; the POST ` +
    `alone: p50 ${ms(lat.createMs.p50)}, p99 ${ms(lat.createMs.p99)}; ${seen}; ` +
    `${lat.wrongStatus} with a wrong status${cpu(lat.cpuMsPerComment)}`
  );
}

function formatTable(r: Results): string {
  const f = r.figures;
  const d = r.details;
  const mark = (ok: boolean) => (ok ? '✔' : '✘');
  const rows: string[][] = [['figure', 'measured', 'target', 'course (JS)', '']];
  const notes: string[] = [];
  const cpu = (perComment: Record<string, number> | null) =>
    perComment
      ? `; CPU per comment: ${Object.entries(perComment)
          .map(([name, value]) => `${name} ${value} ms`)
          .join(', ')}`
      : '';

  if (d.latency && f.latencyP50Ms !== null && f.latencyP99Ms !== null && f.latencyMaxMs !== null) {
    const lat = d.latency;
    rows.push(
      [
        'e2e latency p50 (201 → final status pushed by query)',
        ms(f.latencyP50Ms),
        '≤ 5 ms',
        '',
        mark(f.latencyP50Ms <= TARGETS.latencyP50Ms),
      ],
      ['e2e latency p99', ms(f.latencyP99Ms), '≤ 20 ms', '', mark(f.latencyP99Ms <= TARGETS.latencyP99Ms)],
      ['e2e latency max', ms(f.latencyMaxMs), '', '', ''],
      // The figure starts at the 201; this one includes the create itself, so a 201 that got later
      // cannot make the figure look better.
      [
        'same, from sending the POST: p50 / p99',
        `${ms(lat.fromRequestMs.p50)} / ${ms(lat.fromRequestMs.p99)}`,
        '',
        '',
        '',
      ],
    );
    notes.push(latencyNote(lat, cpu));
  }
  if (d.latencyPolled && f.latencyPolledP50Ms !== null && f.latencyPolledP99Ms !== null) {
    const lat = d.latencyPolled;
    rows.push(
      ['same, seen by polling GET /posts: p50', ms(f.latencyPolledP50Ms), '', '32 ms', ''],
      ['same, seen by polling GET /posts: p99', ms(f.latencyPolledP99Ms), '', '85 ms', ''],
    );
    notes.push(latencyNote(lat, cpu));
  }
  if (d.throughput && f.throughputPerSec !== null) {
    const t = d.throughput;
    const errors =
      Object.entries(t.errors)
        .map(([status, n]) => `${n}× ${status}`)
        .join(', ') || 'none';
    rows.push(
      [
        'e2e throughput (created → final in query)',
        `${f.throughputPerSec.toFixed(0)} comments/s`,
        '≥ 500/s (aim 1000)',
        '104/s',
        mark(f.throughputPerSec >= TARGETS.throughputPerSec && t.complete),
      ],
      ['throughput errors (non-201)', `${t.errorCount} (${errors})`, '0', '', mark(t.errorCount === 0)],
    );
    notes.push(
      `throughput: ${t.settings.writers} writers on ${t.settings.posts} posts for ${t.settings.durationMs / 1000} s: ` +
        `${t.created} created (${t.createdPerSecond}/s, POST p50 ${ms(t.createMs.p50)}, p99 ${ms(t.createMs.p99)}), ` +
        `${t.final} final in query ${t.drainMs} ms after the writers stopped` +
        `${t.complete ? '' : ' (NOT ALL FINAL before the deadline)'}${cpu(t.cpuMsPerComment)}`,
    );
  }
  if (d.rate && f.queryRps !== null && f.bareRps !== null && f.queryToBareRatio !== null) {
    const rate = d.rate;
    rows.push(
      ['query GET /posts', `${f.queryRps.toFixed(0)} req/s`, '', '', ''],
      ['bare node:http, same bytes', `${f.bareRps.toFixed(0)} req/s`, '', '', ''],
      [
        'query / bare',
        f.queryToBareRatio.toFixed(2),
        '≥ 0.5',
        '0.04',
        mark(f.queryToBareRatio >= TARGETS.queryToBareRatio),
      ],
    );
    notes.push(
      `GET /posts: ${rate.posts} posts, ${rate.comments} comments, ${(rate.bodyBytes / 1024).toFixed(0)} KiB; ` +
        `autocannon ${rate.settings.connections} connections × ${rate.settings.durationS} s; query p50 ` +
        `${rate.query.latencyP50Ms} ms p99 ${rate.query.latencyP99Ms} ms (${rate.query.mbPerSecond} MB/s), bare p50 ` +
        `${rate.bare.latencyP50Ms} ms p99 ${rate.bare.latencyP99Ms} ms (${rate.bare.mbPerSecond} MB/s)`,
    );
  }
  if (d.replay && f.readyMs !== null) {
    const replay = d.replay;
    rows.push([
      `query ready from ${replay.events.toLocaleString('en')} events`,
      `${(f.readyMs / 1000).toFixed(2)} s`,
      '≤ 2 s',
      '',
      mark(f.readyMs <= TARGETS.readyMs && replay.verified),
    ]);
    notes.push(
      `start: ${replay.posts} posts and ${replay.comments} comments in ${replay.events} events ` +
        `(${(replay.databaseBytes / 2 ** 20).toFixed(1)} MiB of ${r.transport === 'nats' ? 'JetStream store' : 'SQLite'}, ` +
        `built in ${replay.buildMs} ms); ` +
        `spawn → /readyz 200 in ${replay.readyMs} ms` +
        (replay.bootMs === null ? '' : ` (boot ${replay.bootMs} ms, catch-up ${replay.catchUpMs} ms)`) +
        '; ' +
        `${replay.verified ? 'every post and comment served' : 'NOT VERIFIED'}`,
    );
  }

  if (d.client && f.clientJsGzipKb !== null) {
    const c = d.client;
    rows.push([
      'client JavaScript, gzipped',
      `${f.clientJsGzipKb.toFixed(1)} kB`,
      `≤ ${TARGETS.clientJsGzipKb} kB`,
      '',
      mark(f.clientJsGzipKb <= TARGETS.clientJsGzipKb),
    ]);
    if (f.clientLoadMs !== null) {
      rows.push([`page load → ${c.posts} posts drawn (median)`, ms(f.clientLoadMs), '', '', '']);
    }
    notes.push(
      `client: ${c.jsFiles.map((file) => `${file.file} ${(file.bytes / 1000).toFixed(1)} kB (${(file.gzipBytes / 1000).toFixed(1)} gzipped)`).join(', ')}; ` +
        (c.skipped
          ? `page loads skipped: ${c.skipped}`
          : `Chromium (headless, cache off) via the router, navigation start → ${c.posts} cards in the post list: ` +
            `${c.loadsMs.map((v) => ms(v)).join(', ')}`),
    );
  }

  const widths = rows[0]!.map((_, col) => Math.max(...rows.map((row) => row[col]!.length)));
  const line = (row: string[]) => `| ${row.map((cell, col) => cell.padEnd(widths[col]!)).join(' | ')} |`;
  const table = [
    line(rows[0]!),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...rows.slice(1).map(line),
  ];
  const m = r.machine;
  const header = [
    `${r.date} · ${r.command} · ${r.mode} run in ${d.totalSeconds} s`,
    `machine: ${m.cpus} × ${m.cpuModel}, ${m.memoryGB} GB, node ${m.node}, ${m.platform}; ` +
      `load average ${m.loadBefore} before, ${m.loadAfter} after`,
    `system: ${r.system}, transport ${r.transport}, LOG_LEVEL=${r.logLevel}`,
  ];
  const errors = `errors: ${Object.entries(r.errors)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ')}`;
  return [...header, '', ...table, '', ...notes, errors].join('\n');
}

function formatHops(hops: HopTiming[]): string {
  const width = Math.max(...hops.map((h) => h.hop.length));
  const rows = hops.map(
    (h) =>
      `  ${h.hop.padEnd(width)}  mean ${h.meanMs.toFixed(2).padStart(6)} ms   p50 ${h.p50Ms.toFixed(0).padStart(3)} ms`,
  );
  return [`Per hop (latency phase, LOG_LEVEL=debug, log times to the ms):`, ...rows].join('\n');
}

// ---------------------------------------------------------------------------------------------- entry

if (process.argv[2] === '--serve-bare') {
  serveBare(process.argv[3]!, process.argv[4]!);
} else {
  main().catch((err: unknown) => {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
