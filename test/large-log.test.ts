import { afterAll, expect, it } from 'vitest';
import { peakRssMiB, rssMiB } from '../scripts/src/harness.js';
import { SUBSCRIBER_NAMES } from '../scripts/src/process/names.js';
import { startSystem } from '../scripts/src/process/system.js';
import type { System } from '../scripts/src/process/system-types.js';
import { readYaml } from './deploy/support/files.js';
import { blogClient } from './support/client.js';
import { waitFor } from './support/stack.js';

/**
 * A log of large events replays, and the bus stays within its Kubernetes memory limit while four services
 * catch up at once. 2,300 comments of 5,000 characters, almost all backslashes: about 10 KB per event once
 * JSON-escaped, three events per comment, a log of about 70 MB, more than a page of 10,000 events could
 * carry in an answer the services read (64 MiB). Real processes; the comments created through the course's
 * route, 16 at a time, on 20 posts.
 */
const POSTS = 20;
const COMMENTS = 2300;
const IN_FLIGHT = 16;
/**
 * 5,000 characters, the most the route takes: the comment's number (one in ten mentions an orange, so
 * moderation rejects it), then backslashes, each escaped as two characters in the event's JSON.
 */
const contentOf = (i: number) => {
  const tag = `#${i}${i % 10 === 0 ? ' orange' : ''} `;
  return tag + '\\'.repeat(5000 - tag.length);
};
const statusOf = (i: number) => (i % 10 === 0 ? 'rejected' : 'approved');

/** The bus's memory limit in its Deployment, in MiB (`512Mi`). */
function busMemoryLimitMiB(): number {
  const deployment = readYaml('infra/k8s/event-bus-depl.yaml');
  const limit = String(deployment.spec.template.spec.containers[0].resources.limits.memory);
  const match = /^(\d+)(Mi|Gi)$/.exec(limit);
  if (!match) throw new Error(`event-bus-depl.yaml: a memory limit in Mi or Gi, not ${limit}`);
  return Number(match[1]) * (match[2] === 'Gi' ? 1024 : 1);
}

let system: System | undefined;
afterAll(() => system?.stop());

/** Creates comment `i` on its post through comments' `POST /posts/:id/comments`; the answer is not parsed. */
async function createComment(commentsUrl: string, postId: string, i: number): Promise<void> {
  const res = await fetch(`${commentsUrl}/posts/${postId}/comments`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ content: contentOf(i) }),
    signal: AbortSignal.timeout(30_000),
  });
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`comment ${i}: ${res.status}`);
}

it(
  'a log of 2,300 comments of 10 KB events replays to four services killed at once; the bus stays under its memory limit',
  { timeout: 400_000 },
  async () => {
    const limitMiB = busMemoryLimitMiB();
    system = await startSystem({ quiet: true, env: { LOG_LEVEL: 'warn' } });
    const blog = blogClient(system.urls);
    const startedAt = Date.now();
    const postIds: string[] = [];
    for (let p = 0; p < POSTS; p++)
      postIds.push(((await blog.createPost(`post ${p}`)).body as { id: string }).id);

    let next = 0;
    const writer = async () => {
      for (let i = next++; i < COMMENTS; i = next++) {
        await createComment(system!.urls.comments, postIds[i % POSTS]!, i);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, writer));

    // Every comment moderated and applied everywhere: the log holds each one's three events.
    const head = POSTS + 3 * COMMENTS;
    await waitFor(
      async () => {
        const subscribers = (await blog.subscribers()) as { cursor: number; lag: number }[];
        return subscribers.every((s) => s.cursor + s.lag === head && s.lag === 0);
      },
      { timeoutMs: 180_000, intervalMs: 200, message: `the bus did not deliver all ${head} events in time` },
    );

    const busPid = system.status().find((s) => s.name === 'event-bus')!.pid;
    const beforeCatchUpMiB = rssMiB(busPid) ?? 0;
    let peakDuringCatchUpMiB = beforeCatchUpMiB;
    const sampler = setInterval(() => {
      peakDuringCatchUpMiB = Math.max(peakDuringCatchUpMiB, rssMiB(busPid) ?? 0);
    }, 5);
    const killedAt = Date.now();
    let peakSinceStartMiB = 0;
    try {
      await Promise.all(SUBSCRIBER_NAMES.map((name) => system!.kill(name, 'SIGKILL')));
      // Each restart resolves once its service answers /readyz 200: caught up with the whole log.
      await Promise.all(SUBSCRIBER_NAMES.map((name) => system!.restart(name)));
    } finally {
      clearInterval(sampler);
      peakSinceStartMiB = peakRssMiB(busPid) ?? 0;
      console.log(
        `large log: ${head} events written in ${((killedAt - startedAt) / 1000).toFixed(1)} s, replayed in ` +
          `${((Date.now() - killedAt) / 1000).toFixed(1)} s; bus RSS ${beforeCatchUpMiB.toFixed(1)} MiB ` +
          `before the kill, peak ${peakDuringCatchUpMiB.toFixed(1)} MiB while four services caught up, ` +
          `${peakSinceStartMiB.toFixed(1)} MiB since it started (VmHWM); limit ${limitMiB} MiB`,
      );
    }

    const view = await blog.query();
    const comments = postIds.flatMap((postId) => view[postId]!.comments);
    const found = new Map(comments.map((comment) => [comment.content, comment.status]));
    expect(comments).toHaveLength(COMMENTS);
    expect(found.size).toBe(COMMENTS);
    for (let i = 0; i < COMMENTS; i++) expect(found.get(contentOf(i)), `comment ${i}`).toBe(statusOf(i));

    expect(peakDuringCatchUpMiB).toBeLessThan(limitMiB);
    expect(peakSinceStartMiB).toBeLessThan(limitMiB);
  },
);
