/** The rate phase: query's `GET /posts` requests per second (autocannon), beside a bare node:http server. */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { round, say, sleep } from '../harness.js';
import { startBareServer } from './bare-server.js';
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
