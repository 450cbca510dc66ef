/** The start-up phase: the time query takes from its spawn to `/readyz` 200 on a long log. */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { round, say } from '../harness.js';
import { ROOT_DIR } from '../process/names.js';
import { freePorts } from '../process/ports.js';
import type { SystemOptions } from '../process/system-types.js';
import type { Settings } from './options.js';
import { buildLog, buildStream, type BuiltLog } from './replay-log.js';
import { get } from './requests.js';
import { pollReady, spawnService, type Spawned } from './spawn.js';
import { processCpuMs } from './cpu.js';
import { now } from './stats.js';
import { type QueryPosts } from './views.js';

/**
 * How often the bench asks query's `/readyz` while it starts: the figure is what a probe at this interval
 * sees, at most this much after the moment query turned ready, and the output says it. Each answer costs
 * query a little CPU (docs/performance.md, "Start-up").
 */
export const READY_POLL_MS = 2;

/** V8's code cache that query's start file writes beside its bundle (query/src/bundle-run.ts). */
const QUERY_CODE_CACHE = path.join(ROOT_DIR, 'query', 'dist', 'index.bundle.js.cache');

/** One start of query on the log: from its spawn to ready, and what it served then. */
export interface StartFigures {
  /** From spawning query to its first `GET /readyz` 200, polled every READY_POLL_MS. */
  readyMs: number;
  /**
   * CPU time (user + system, /proc, in 10 ms ticks) query used from its spawn to ready, and the bus in the
   * same span: less sensitive than the wall time to what else the machine runs. Null where /proc is not.
   */
  queryCpuMs: number | null;
  busCpuMs: number | null;
  /** Of which: from the spawn to query's "listening" line (Node's start, loading modules), when logged. */
  bootMs: number | null;
  /** And from "listening" to ready: fetching and applying the log. */
  catchUpMs: number | null;
  /** Whether query's bundle found V8's code cache of an earlier start beside it (query/src/bundle-run.ts). */
  codeCache: boolean;
  /** What query served right after: every post and comment, all final. */
  verified: boolean;
}

/**
 * The figure is query's first start, without the code cache an earlier start leaves beside its bundle (as
 * the production image, whose files query cannot write, always starts); `restart` is a second start of
 * query on the same bus, with the cache the first one wrote, as each later `npm start` is.
 */
export interface ReplayResult extends StartFigures {
  events: number;
  posts: number;
  comments: number;
  /** Building the log with the bus's own store module (not part of the figure). */
  buildMs: number;
  databaseBytes: number;
  pollMs: number;
  restart: StartFigures;
}

/** Where query reads the log, and what it holds. */
interface LogSource {
  log: BuiltLog;
  databaseBytes: number;
  /** query's environment: the bus, or (nats) the stream, with no bus at all. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

async function buildSource(
  dataDir: string,
  events: number,
  transport: Pick<SystemOptions, 'transport'>,
  busUrl: string,
): Promise<LogSource> {
  if (transport.transport === 'nats') {
    const stream = await buildStream(dataDir, events);
    return {
      log: stream.log,
      databaseBytes: stream.bytes,
      env: { EVENT_TRANSPORT: 'nats', NATS_URL: stream.server.url, NATS_STREAM: stream.stream },
      stop: () => stream.server.stop(),
    };
  }
  const { databaseBytes, ...log } = buildLog(dataDir, events);
  return {
    log,
    databaseBytes,
    env: { EVENT_TRANSPORT: 'http', EVENT_BUS_URL: busUrl },
    stop: () => Promise.resolve(),
  };
}

export async function measureReplay(
  settings: Settings['replay'],
  logLevel: string,
  transport: Pick<SystemOptions, 'transport'>,
): Promise<ReplayResult> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'blog-bench-replay-'));
  const children: Spawned[] = [];
  let source: LogSource | undefined;
  try {
    const [busPort, queryPort] = await freePorts(2);
    const busUrl = `http://127.0.0.1:${busPort}`;
    const queryUrl = `http://127.0.0.1:${queryPort}`;
    const built = now();
    source = await buildSource(dataDir, settings.events, transport, busUrl);
    const buildMs = now() - built;

    if (transport.transport !== 'nats') {
      const bus = spawnService('event-bus', {
        PORT: String(busPort),
        EVENT_TRANSPORT: 'http',
        DATA_DIR: dataDir,
        SUBSCRIBERS: `query=${queryUrl}/events`,
        LOG_LEVEL: logLevel,
      });
      children.push(bus);
      await pollReady(busUrl, bus, 30_000, 20);
    }

    const busPid = children[0]?.process.pid;
    const { env, log } = source;
    const start = async (): Promise<StartFigures> => {
      const busCpuBefore = processCpuMs(busPid);
      const codeCache = existsSync(QUERY_CODE_CACHE);
      const spawned = now();
      const query = spawnService('query', { PORT: String(queryPort), ...env, LOG_LEVEL: logLevel });
      children.push(query);
      try {
        await pollReady(queryUrl, query, settings.readyTimeoutMs, READY_POLL_MS);
        const readyMs = now() - spawned;
        const queryCpuMs = processCpuMs(query.process.pid) ?? null;
        const busCpuAfter = processCpuMs(busPid);
        const bootMs = query.listeningAt === undefined ? null : round(query.listeningAt - spawned, 0);
        return {
          readyMs: round(readyMs, 0),
          queryCpuMs,
          busCpuMs:
            busCpuBefore === undefined || busCpuAfter === undefined ? null : busCpuAfter - busCpuBefore,
          bootMs,
          catchUpMs: bootMs === null ? null : round(readyMs - bootMs, 0),
          codeCache,
          verified: await servesWholeLog(queryUrl, log),
        };
      } finally {
        // Stopped whole before the next start: its code cache is written as it exits.
        await query.process.stop();
      }
    };
    rmSync(QUERY_CODE_CACHE, { force: true });
    const first = await start();
    const restart = await start();
    return {
      events: settings.events,
      posts: log.posts,
      comments: log.comments,
      buildMs: round(buildMs, 0),
      databaseBytes: source.databaseBytes,
      pollMs: READY_POLL_MS,
      ...first,
      restart,
    };
  } finally {
    await Promise.all(children.map((child) => child.process.stop()));
    await source?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Whether query serves every post and comment of the log, all final (and if not, says what it serves). */
async function servesWholeLog(queryUrl: string, log: BuiltLog): Promise<boolean> {
  const reply = await get(`${queryUrl}/posts`, { timeoutMs: 30_000 });
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
  return verified;
}
