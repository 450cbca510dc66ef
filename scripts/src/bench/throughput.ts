/** The throughput phase: concurrent writers for a fixed time, then until every comment is final in query. */
import { randomUUID } from 'node:crypto';
import { round, sleep } from '../harness.js';
import type { Settings, Urls } from './options.js';
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
  /** From the first POST to the last comment final in query. */
  elapsedMs: number;
  /** From the writers' end to the last comment final in query. */
  drainMs: number;
  createMs: Distribution;
  complete: boolean;
}

export async function measureThroughput(
  urls: Urls,
  settings: Settings['throughput'],
): Promise<ThroughputResult> {
  const run = randomUUID().slice(0, 8);
  const prefix = `tput ${run} `;
  const postIds = await pool(
    Array.from({ length: settings.posts }, (_, i) => i),
    8,
    (i) => createPost(urls, `throughput ${run} ${i}`),
  );
  const start = now();
  const written = await write(urls, postIds, prefix, settings);
  const writersDone = now();
  // Then until every comment of this run is final in query.
  const drained = await drain(urls, postIds, prefix, written.created, writersDone + settings.drainTimeoutMs);
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
async function write(urls: Urls, postIds: string[], prefix: string, settings: Settings['throughput']) {
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
        const reply = await post(`${urls.comments}/posts/${postId}/comments`, { content });
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

/** Polls query until every comment of the run (`prefix`) is final, or the deadline passes. */
async function drain(urls: Urls, postIds: string[], prefix: string, created: number, deadline: number) {
  const view = new QueryView(urls.query);
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
