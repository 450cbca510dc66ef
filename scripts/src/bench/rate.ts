/** The rate phase: query's `GET /posts` requests per second (autocannon), beside a bare node:http server. */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { round, say, sleep } from '../harness.js';
import { startBareServer } from './bare-server.js';
import { cpuSnapshot } from './cpu.js';
import type { Settings, Urls } from './options.js';
import { createPost, get, postJson } from './requests.js';
import { now, pool } from './stats.js';
import { QueryView, type QueryPosts } from './views.js';

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

export interface RateFigures {
  rps: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  mbPerSecond: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** The server's CPU time (user + system) per request answered, in µs: what the rate is, less the load. */
  cpuUsPerRequest: number | null;
}

export interface RateResult {
  settings: Settings['rps'];
  posts: number;
  comments: number;
  bodyBytes: number;
  contentType: string;
  query: RateFigures;
  bare: RateFigures;
  ratio: number;
}

type Cannon = (url: string, durationS: number) => Promise<AutocannonResult>;

function loadCannon(connections: number): Cannon {
  const require = createRequire(import.meta.url);
  const autocannon = require('autocannon') as Autocannon;
  return async (url, durationS) => autocannon({ url, connections, duration: durationS });
}

/** One measured run: autocannon's result, and the CPU ms its server used meanwhile (if known). */
interface Run {
  result: AutocannonResult;
  cpuMs: number | undefined;
}

/** A target's figures from its runs: rates over their whole time, p50 weighted by requests, the worst p99. */
function figuresOf(runs: Run[]): RateFigures {
  const sum = (pick: (run: AutocannonResult) => number) =>
    runs.reduce((total, run) => total + pick(run.result), 0);
  const seconds = sum((run) => run.duration);
  const requests = sum((run) => run.requests.total);
  const answered = sum((run) => run['2xx']);
  const cpuMs = runs.every((run) => run.cpuMs !== undefined)
    ? runs.reduce((total, run) => total + run.cpuMs!, 0)
    : undefined;
  return {
    rps: round(answered / seconds, 0),
    latencyP50Ms: round(sum((run) => run.latency.p50 * run.requests.total) / Math.max(1, requests), 1),
    latencyP99Ms: Math.max(...runs.map((run) => run.result.latency.p99)),
    mbPerSecond: round(sum((run) => run.throughput.average * run.duration) / seconds / 1e6, 1),
    requests,
    non2xx: sum((run) => run.non2xx),
    errors: sum((run) => run.errors),
    cpuUsPerRequest: cpuMs === undefined || answered === 0 ? null : round((cpuMs * 1000) / answered, 1),
  };
}

/** CPU ms a server has used so far: query says it in its metrics, the bare server's is read from /proc. */
type CpuClock = () => Promise<number | undefined>;

function queryCpuClock(queryUrl: string): CpuClock {
  return async () => {
    const metrics = await get(`${queryUrl}/metrics`);
    const seconds = /^process_cpu_seconds_total(?:{[^}]*})? (\S+)$/m.exec(metrics.body)?.[1];
    return seconds === undefined ? undefined : Number(seconds) * 1000;
  };
}

function processCpuClock(pid: number | undefined): CpuClock {
  return () => Promise.resolve(cpuSnapshot(undefined, { server: pid }).server);
}

/**
 * query and the bare server under the same conditions: each is warmed up first (its JIT and autocannon's,
 * and the system settled after the seeding), then measured in two halves in the order query, bare, bare,
 * query, so neither is favoured by going first or by the machine's load drifting during the phase.
 */
async function compare(
  query: { url: string; cpu: CpuClock },
  bare: { url: string; cpu: CpuClock },
  settings: Settings['rps'],
) {
  const cannon = loadCannon(settings.connections);
  const halfS = Math.max(1, settings.durationS / 2);
  const run = async (target: { url: string; cpu: CpuClock }): Promise<Run> => {
    const before = await target.cpu();
    const result = await cannon(target.url, halfS);
    const after = await target.cpu();
    return { result, cpuMs: before === undefined || after === undefined ? undefined : after - before };
  };
  const warmUpS = Math.min(2, Math.max(1, Math.floor(settings.durationS / 5)));
  await cannon(query.url, warmUpS);
  await cannon(bare.url, warmUpS);
  const queryRuns = [await run(query)];
  const bareRuns = [await run(bare), await run(bare)];
  queryRuns.push(await run(query));
  return { query: figuresOf(queryRuns), bare: figuresOf(bareRuns) };
}

export async function measureRate(urls: Urls, settings: Settings['rps']): Promise<RateResult> {
  await seedPosts(urls, settings);
  // The bytes a browser gets, once, for the bare server to send.
  const reply = await get(`${urls.query}/posts`);
  if (reply.status !== 200) throw new Error(`GET /posts answered ${reply.status}`);
  const contentType = String(reply.headers['content-type'] ?? 'application/json');
  const posts = JSON.parse(reply.body) as QueryPosts;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'blog-bench-bare-'));
  const bodyFile = path.join(dir, 'posts.json');
  writeFileSync(bodyFile, reply.body);
  const bodyBytes = Buffer.byteLength(reply.body);
  // Its headers too (security, CORS, ETag): with only a Content-Type, the client, whose one core bounds
  // both rates, parses less of the bare server's answers, and the ratio would measure that.
  const headersFile = path.join(dir, 'headers.json');
  writeFileSync(headersFile, JSON.stringify(answerHeaders(reply.headers)));

  const bare = await startBareServer(bodyFile, headersFile);
  try {
    say(
      `  autocannon ${urls.query}/posts and a bare node:http server of the same answer, headers too (${settings.connections} ` +
        `connections, ${settings.durationS} s each, after a warm-up, in halves: query, bare, bare, query)`,
    );
    const { query, bare: bareFigures } = await compare(
      { url: `${urls.query}/posts`, cpu: queryCpuClock(urls.query) },
      { url: bare.url, cpu: processCpuClock(bare.server.pid) },
      settings,
    );
    say(
      `  CPU per request: query ${query.cpuUsPerRequest ?? '?'} µs, bare ${bareFigures.cpuUsPerRequest ?? '?'} µs`,
    );
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
    await bare.server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** 500 posts with a couple of comments each (one in five mentions an orange), until query shows them final. */
async function seedPosts(urls: Urls, settings: Settings['rps']): Promise<void> {
  const run = randomUUID().slice(0, 8);
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
  const view = new QueryView(urls.query);
  const deadline = now() + 30_000;
  for (;;) {
    await view.poll();
    const ready = postIds.every((id) => {
      const comments = view.posts[id]?.comments;
      return comments?.length === settings.commentsPerPost && comments.every((c) => c.status !== 'pending');
    });
    if (ready) return;
    if (now() > deadline) throw new Error('query did not show every post and comment within 30 s');
    await sleep(50);
  }
}

/** The headers of an answer that a server sets itself, each time: node:http writes its own. */
const PER_ANSWER = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length']);

/** An answer's headers as the bare server is to send them: all but those node:http writes itself. */
export function answerHeaders(
  headers: Record<string, string | string[] | undefined>,
): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !PER_ANSWER.has(name))
      kept[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  return kept;
}
