/**
 * The throughput phase: concurrent writers for a fixed time, then until every comment is final in query
 * (in every replica of query, each request of the writers going to the next replica of its service).
 */
import { randomUUID } from 'node:crypto';
import { round, sleep } from '../harness.js';
import { inTurn, type Settings, type Targets } from './options.js';
import { createPost, post } from './requests.js';
import { distribution, now, pool, type Distribution } from './stats.js';
import { QueryView } from './views.js';

export interface ThroughputResult {
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
  /** From the first POST to the last comment final in query (in the last of its replicas). */
  elapsedMs: number;
  /** From the writers' end to the last comment final in query. */
  drainMs: number;
  createMs: Distribution;
  complete: boolean;
}

export async function measureThroughput(
  targets: Targets,
  settings: Settings['throughput'],
): Promise<ThroughputResult> {
  const run = randomUUID().slice(0, 8);
  const prefix = `tput ${run} `;
  const nextPosts = inTurn(targets.posts);
  const postIds = await pool(
    Array.from({ length: settings.posts }, (_, i) => i),
    8,
    (i) => createPost({ posts: nextPosts() }, `throughput ${run} ${i}`),
  );
  const start = now();
  const written = await write(targets.comments, postIds, prefix, settings);
  const writersDone = now();
  // Then until every comment of this run is final in every replica of query.
  const deadline = writersDone + settings.drainTimeoutMs;
  const drains = await Promise.all(
    targets.query.map((url) => drain(url, postIds, prefix, written.created, deadline)),
  );
  const drained = {
    final: Math.min(...drains.map((d) => d.final)),
    complete: drains.every((d) => d.complete),
    lastVisible: Math.max(...drains.map((d) => d.lastVisible)),
  };
  const lastVisible = drained.lastVisible;
  const elapsedMs = lastVisible - start;
  const errorCount = Object.values(written.errors).reduce((sum, n) => sum + n, 0);
  return {
    settings,
    perSecond: round(drained.final / (elapsedMs / 1000), 1),
    created: written.created,
    final: drained.final,
    errors: written.errors,
    errorCount,
    createdPerSecond: round(written.created / ((writersDone - start) / 1000), 1),
    elapsedMs: round(elapsedMs, 0),
    drainMs: round(lastVisible - writersDone, 0),
    createMs: distribution(written.createMs),
    complete: drained.complete,
  };
}

/** `settings.writers` concurrent writers, each posting one comment after another until the time is up. */
async function write(
  commentsUrls: readonly string[],
  postIds: string[],
  prefix: string,
  settings: Settings['throughput'],
) {
  const nextComments = inTurn(commentsUrls);
  let counter = 0;
  let created = 0;
  const errors: Record<string, number> = {};
  const createMs: number[] = [];
  const writersEnd = now() + settings.durationMs;
  const writer = async () => {
    while (now() < writersEnd) {
      const n = counter++;
      const postId = postIds[n % postIds.length]!;
      const content = n % 5 === 2 ? `${prefix}${n} orange` : `${prefix}${n}`;
      const sent = now();
      try {
        // The 201 carries the post's whole comments array: read, not parsed (the content identifies ours).
        const reply = await post(`${nextComments()}/posts/${postId}/comments`, { content });
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
  return { created, errors, createMs };
}

/** Polls a query until every comment of the run (`prefix`) is final, or the deadline passes. */
async function drain(queryUrl: string, postIds: string[], prefix: string, created: number, deadline: number) {
  const view = new QueryView(queryUrl);
  for (;;) {
    await view.poll();
    const polled = now();
    let pending = 0;
    let final = 0;
    for (const postId of postIds) {
      for (const comment of view.posts[postId]?.comments ?? []) {
        if (!comment.content.startsWith(prefix)) continue;
        if (comment.status === 'pending') pending++;
        else final++;
      }
    }
    if (pending === 0 && final >= created) return { final, complete: true, lastVisible: polled };
    if (polled > deadline) return { final, complete: false, lastVisible: polled };
    await sleep(20);
  }
}
