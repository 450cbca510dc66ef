import { natsAvailability } from '@blog/common/testing';
import { afterEach, expect, it } from 'vitest';
import type { ProcessName, Transport } from '../scripts/src/process/names.js';
import { startSystem } from '../scripts/src/process/system.js';
import type { System } from '../scripts/src/process/system-types.js';
import { blogClient } from './support/client.js';
import { waitFor } from './support/stack.js';
import { describeEachTransport, systemOptionsFor } from './support/transports.js';

// Faults on real processes: a subscriber down for a while, the bus (on nats: the nats-server, and the
// event-bus gateway) killed with SIGKILL mid-stream, the read models restarted. Nothing acknowledged may be
// lost, nothing may be applied twice. Once on each transport.
let system: System | undefined;
afterEach(async () => {
  await system?.stop();
  system = undefined;
});

const startOn = async (transport: Transport, { ownNats = false } = {}) => {
  system = await startSystem({
    ...systemOptionsFor(transport, { ownNats }),
    quiet: true,
    env: { LOG_LEVEL: 'warn' },
    serviceEnv: { 'event-bus': { RETRY_MAX_MS: '300' } },
  });
  return { system, blog: blogClient(system.urls) };
};

/**
 * Until every subscriber has everything the bus holds, and nobody is retrying. On nats, an ack lost with a
 * SIGKILLed nats-server leaves its event unacknowledged until JetStream's ack wait (30 s) delivers it again.
 */
const waitForQuiet = (blog: ReturnType<typeof blogClient>) =>
  waitFor(
    async () => {
      const subscribers = (await blog.subscribers().catch(() => undefined)) as
        { lag: number; failures: number }[] | undefined;
      return !!subscribers && subscribers.every((s) => s.lag === 0 && s.failures === 0);
    },
    { timeoutMs: 60_000, intervalMs: 50, message: 'the bus did not deliver everything in time' },
  );

const expected = (content: string) => (content.includes('orange') ? 'rejected' : 'approved');

/** What holds the stream, killed in (b): the bus; on nats the nats-server, and apart from it the gateway. */
const streamHolders: Record<Transport, [string, ProcessName][]> = {
  http: [['the bus', 'event-bus']],
  nats: [
    ['the nats-server', 'nats'],
    ['the event-bus gateway', 'event-bus'],
  ],
};

describeEachTransport('resilience', (transport) => {
  const start = () => startOn(transport);

  it('(a) moderation down while 20 comments are created: all 20 end approved or rejected once it is back', async () => {
    const { system, blog } = await start();
    const post = (await blog.createPost('Moderation outage')).body as { id: string };
    await system.kill('moderation');

    const contents = Array.from({ length: 20 }, (_, i) => (i % 3 === 0 ? `orange ${i}` : `comment ${i}`));
    for (const content of contents) expect((await blog.createComment(post.id, content)).status).toBe(201);
    // The comments service has them at once (read your writes); query gets them a moment later.
    await waitFor(async () => (await blog.query())[post.id]!.comments.length === contents.length);
    const pending = (await blog.query())[post.id]!.comments;
    expect(pending.map((c) => c.status)).toEqual(contents.map(() => 'pending'));

    await system.restart('moderation');
    await waitFor(async () => (await blog.query())[post.id]!.comments.every((c) => c.status !== 'pending'), {
      timeoutMs: 20_000,
    });
    const final = (await blog.query())[post.id]!.comments;
    expect(final.map((c) => [c.content, c.status])).toEqual(contents.map((c) => [c, expected(c)]));
    expect((await blog.comments(post.id)).map((c: { status: string }) => c.status)).toEqual(
      contents.map(expected),
    );
  });

  for (const [label, victim] of streamHolders[transport]) {
    // Killing the nats-server takes one of our own (not CI's shared BLOG_NATS_URL).
    const ownNats = victim === 'nats';
    it.skipIf(ownNats && natsAvailability({ needs: 'binary' }).skip)(
      `(b) ${label} killed with SIGKILL mid-stream: every acknowledged write is there once, nothing doubled`,
      async () => {
        const { system, blog } = await startOn(transport, { ownNats });
        const ackedPosts = new Set<string>();
        const ackedComments = new Map<string, { postId: string; content: string }>();
        let refused = 0;
        let writing = true;

        const writer = async (writerId: number) => {
          let postId: string | undefined;
          for (let i = 0; writing; i++) {
            try {
              if (!postId || i % 5 === 0) {
                const res = await blog.createPost(`post ${writerId}-${i}`);
                if (res.status === 201) ackedPosts.add((postId = res.body.id));
                else refused++;
              } else {
                const content = i % 4 === 0 ? `orange ${writerId}-${i}` : `comment ${writerId}-${i}`;
                const res = await blog.createComment(postId, content);
                if (res.status === 201) {
                  const created = (res.body as { id: string; content: string }[]).findLast(
                    (c) => c.content === content,
                  )!;
                  ackedComments.set(created.id, { postId, content });
                } else refused++;
              }
            } catch {
              refused++; // connection reset while the bus restarts: not acknowledged
            }
          }
        };
        const writers = [1, 2, 3, 4].map(writer);
        await new Promise((resolve) => setTimeout(resolve, 1500));
        await system.kill(victim, 'SIGKILL');
        await new Promise((resolve) => setTimeout(resolve, 500));
        await system.restart(victim);
        await new Promise((resolve) => setTimeout(resolve, 1500));
        writing = false;
        await Promise.all(writers);
        expect(ackedPosts.size).toBeGreaterThan(5);
        expect(ackedComments.size).toBeGreaterThan(20);

        await waitForQuiet(blog);
        // On NATS a consumer's lag says what the server has sent, not what the replica has handled: a
        // replica waiting to publish a reaction again after NATS came back shows no lag. So wait for every
        // acknowledged comment's last event (a lost one fails here), then count each exactly.
        const hasUpdate = (events: Awaited<ReturnType<typeof blog.events>>, id: string) =>
          events.some((e) => e.type === 'CommentUpdated' && e.data.id === id);
        await waitFor(
          async () => {
            const logged = await blog.events();
            return [...ackedComments.keys()].every((id) => hasUpdate(logged, id));
          },
          { timeoutMs: 30_000, message: 'a comment acknowledged never got its CommentUpdated' },
        );
        const events = await blog.events();
        const count = (type: string, id: string) =>
          events.filter((e) => e.type === type && e.data.id === id).length;
        for (const postId of ackedPosts) expect(count('PostCreated', postId), `post ${postId}`).toBe(1);
        for (const commentId of ackedComments.keys()) {
          expect(count('CommentCreated', commentId), `comment ${commentId}`).toBe(1);
          expect(count('CommentModerated', commentId), `moderation of ${commentId}`).toBe(1);
          expect(count('CommentUpdated', commentId), `update of ${commentId}`).toBe(1);
        }
        expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
        expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));

        // Query applies the last CommentUpdated a moment after the log has it.
        const lastUpdate = events.findLast((e) => e.type === 'CommentUpdated')!;
        await waitFor(async () => {
          const comment = (await blog.query())[lastUpdate.data.postId as string]?.comments.find(
            (c) => c.id === lastUpdate.data.id,
          );
          return comment?.status === lastUpdate.data.status;
        });
        const view = await blog.query();
        const posts = await blog.postsOfPosts();
        for (const postId of ackedPosts) {
          expect(view[postId], `post ${postId} in query`).toBeDefined();
          expect(posts[postId], `post ${postId} in posts`).toBeDefined();
        }
        for (const [commentId, { postId, content }] of ackedComments) {
          const inQuery = view[postId]!.comments.filter((c) => c.id === commentId);
          expect(inQuery, `comment ${commentId} in query`).toEqual([
            { id: commentId, content, status: expected(content) },
          ]);
          const inComments = (await blog.comments(postId)) as { id: string; status: string }[];
          expect(inComments.filter((c) => c.id === commentId).map((c) => c.status)).toEqual([
            expected(content),
          ]);
        }
        console.log(
          `${transport}: ${label} killed mid-stream: ${ackedPosts.size} posts and ${ackedComments.size} comments acknowledged, ${refused} writes refused during the outage`,
        );
      },
      90_000,
    );
  }

  it('(c) query and comments restarted: the same view as before', async () => {
    const { system, blog } = await start();
    for (let p = 0; p < 3; p++) {
      const post = (await blog.createPost(`post ${p}`)).body as { id: string };
      for (let c = 0; c < 4; c++) await blog.createComment(post.id, c === 2 ? 'orange' : `comment ${c}`);
    }
    await waitForQuiet(blog);
    const view = await blog.query();
    const postIds = Object.keys(view);
    const comments = await Promise.all(postIds.map((id) => blog.comments(id)));

    await system.kill('query', 'SIGKILL');
    await system.restart('query');
    await system.restart('comments');
    expect(await blog.query()).toEqual(view);
    expect(await Promise.all(postIds.map((id) => blog.comments(id)))).toEqual(comments);
    expect(Object.values(view).flatMap((post) => post.comments.map((c) => c.status))).not.toContain(
      'pending',
    );
  });
});
