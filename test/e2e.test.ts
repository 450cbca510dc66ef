import { fileURLToPath } from 'node:url';
import { ManagedProcess } from '@blog/common/process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_NAMES } from '../scripts/src/process/names.js';
import { startSystem } from '../scripts/src/process/system.js';
import type { System } from '../scripts/src/process/system-types.js';
import { blogClient } from './support/client.js';
import { waitFor } from './support/stack.js';
import { describeEachTransport, systemOptionsFor } from './support/transports.js';

// The five services as real processes on free ports, as `npm start` runs them, driven over real HTTP: on
// the HTTP bus, and on NATS JetStream (a real nats-server) with the bus as its gateway.
describeEachTransport('the blog', (transport) => {
  let system: System;
  let blog: ReturnType<typeof blogClient>;

  beforeAll(async () => {
    system = await startSystem({
      ...systemOptionsFor(transport),
      quiet: true,
      env: { LOG_LEVEL: 'warn' },
      serviceEnv: { 'event-bus': { RETRY_MAX_MS: '500' } },
    });
    blog = blogClient(system.urls);
  });
  afterAll(() => system?.stop());

  const statusInQuery = async (postId: string, commentId: string) =>
    (await blog.query())[postId]?.comments.find((comment) => comment.id === commentId)?.status;

  describe('the course flow, end to end', () => {
    it('creates a post, comments on it, and sees moderation reach the query service', async () => {
      const post = await blog.createPost('My first post');
      expect(post.status).toBe(201);
      expect(post.body).toEqual({ id: expect.stringMatching(/^[0-9a-f]{8}$/), title: 'My first post' });
      expect((await blog.postsOfPosts())[post.body.id]).toEqual(post.body);

      const good = await blog.createComment(post.body.id, 'Nice post');
      expect(good.status).toBe(201);
      // The answer is the post's comments as the new comment's own event left them, on every transport:
      // the new one is pending, however soon its moderation is applied.
      expect(good.body).toEqual([{ id: expect.any(String), content: 'Nice post', status: 'pending' }]);
      const bad = await blog.createComment(post.body.id, 'I prefer orange');
      expect(bad.status).toBe(201);
      expect(bad.body).toEqual([
        { id: good.body[0].id, content: 'Nice post', status: expect.stringMatching(/^(pending|approved)$/) },
        { id: expect.any(String), content: 'I prefer orange', status: 'pending' },
      ]);
      const [goodId, badId] = [good.body[0].id, bad.body[1].id];

      await waitFor(async () => (await statusInQuery(post.body.id, badId)) === 'rejected');
      await waitFor(async () => (await statusInQuery(post.body.id, goodId)) === 'approved');
      expect((await blog.query())[post.body.id]).toEqual({
        id: post.body.id,
        title: 'My first post',
        comments: [
          { id: goodId, content: 'Nice post', status: 'approved' },
          { id: badId, content: 'I prefer orange', status: 'rejected' },
        ],
      });
      expect(await blog.comments(post.body.id)).toEqual([
        { id: goodId, content: 'Nice post', status: 'approved' },
        { id: badId, content: 'I prefer orange', status: 'rejected' },
      ]);
    });

    it('keeps the course log format on GET /events, and delivers every event to all four services', async () => {
      const events = await blog.events();
      expect(events.map((event) => event.type)).toEqual(
        expect.arrayContaining(['PostCreated', 'CommentCreated', 'CommentModerated', 'CommentUpdated']),
      );
      events.forEach((event, index) =>
        expect(event).toMatchObject({ seq: index + 1, type: expect.any(String), data: expect.any(Object) }),
      );
      await waitFor(async () =>
        ((await blog.subscribers()) as { cursor: number }[]).every(
          (subscriber) => subscriber.cursor === events.length,
        ),
      );
      // On NATS, each replica's consumer is named `<service>-<HOSTNAME>-...`.
      const services = ((await blog.subscribers()) as { name: string }[]).map((s) => s.name.split('-')[0]);
      expect(services.sort()).toEqual(['comments', 'moderation', 'posts', 'query']);
    });
  });

  // A course-original service has only POST /events, which only the HTTP bus calls (docs/event-bus.md).
  if (transport === 'http')
    describe('a course-original service in place of ours', () => {
      const spawned: ManagedProcess[] = [];
      afterAll(() => Promise.all(spawned.map((course) => course.kill())));

      const runCourseService = async (name: 'moderation' | 'query') => {
        // Our service first stops cleanly on SIGTERM (graceful shutdown, exit code 0).
        expect(await system.kill(name, 'SIGTERM')).toEqual({ code: 0, signal: null });
        const course = new ManagedProcess({
          name: `the course ${name}`,
          command: process.execPath,
          args: [fileURLToPath(new URL(`./fixtures/course/${name}.mjs`, import.meta.url))],
          env: {
            ...process.env,
            PORT: String(system.ports[name]),
            EVENT_BUS_URL: system.urls['event-bus'],
          },
          ready: /Listening on/,
          readyTimeoutMs: 10_000,
        });
        spawned.push(course);
        await course.start();
      };

      it('works with the course moderation (plain single events, no ids)', async () => {
        await runCourseService('moderation');
        const post = await blog.createPost('Swapped moderation');
        const comment = await blog.createComment(post.body.id, 'orange is my colour');
        expect(comment.body).toEqual([
          { id: expect.any(String), content: 'orange is my colour', status: 'pending' },
        ]);
        await waitFor(async () => (await statusInQuery(post.body.id, comment.body[0].id)) === 'rejected', {
          timeoutMs: 15_000,
        });
      });

      it('works with the course query (replays GET /events at start)', async () => {
        const before = await blog.query();
        await runCourseService('query');
        await waitFor(
          async () => JSON.stringify(await blog.query().catch(() => ({}))) === JSON.stringify(before),
          {
            timeoutMs: 15_000,
          },
        );
        const post = await blog.createPost('Seen by the course query');
        const comment = await blog.createComment(post.body.id, 'fine');
        expect(comment.body).toEqual([{ id: expect.any(String), content: 'fine', status: 'pending' }]);
        await waitFor(async () => (await statusInQuery(post.body.id, comment.body[0].id)) === 'approved', {
          timeoutMs: 15_000,
        });
      });
    });

  describe('process lifecycle', () => {
    it('shuts every service down cleanly on SIGTERM (exit code 0)', async () => {
      // On the HTTP bus, query and moderation were stopped the same way above, to make room for the course's.
      const names = transport === 'http' ? (['posts', 'comments', 'event-bus'] as const) : SERVICE_NAMES;
      for (const name of names) {
        expect(await system.kill(name, 'SIGTERM'), name).toEqual({ code: 0, signal: null });
      }
    });
  });
});

describe('a malformed configuration', () => {
  it('stops a service at once, naming the variable', async () => {
    const { spawnSync } = await import('node:child_process');
    const run = spawnSync(
      process.execPath,
      [fileURLToPath(new URL('../posts/dist/index.js', import.meta.url))],
      {
        env: { ...process.env, PORT: 'eighty', EVENT_BUS_URL: 'not a url' },
        encoding: 'utf8',
        timeout: 10_000,
      },
    );
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/PORT="eighty"/);
    expect(run.stderr).toMatch(/EVENT_BUS_URL="not a url"/);
  });
});
