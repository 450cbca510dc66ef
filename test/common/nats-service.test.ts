import { type StoredEvent } from '@blog/common';
import { connect } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { natsAvailability } from '@blog/common/testing';
import { useNats, useOwnNatsServer } from '../support/nats.js';
import { blogClient } from '../support/client.js';
import { startNatsStack, type NatsStack } from '../support/nats-stack.js';
import { waitFor } from '../support/stack.js';

// The blog's own services (createService with their real projections and routes) driven entirely over
// NATS JetStream, EVENT_TRANSPORT=nats: no HTTP bus delivers anything; the bus runs only as the gateway.

let stack: NatsStack | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

/** The course's flow: a post, a comment approved and one rejected, seen by query. */
async function courseFlow(api: ReturnType<typeof blogClient>) {
  const post = await api.createPost('On NATS');
  expect(post.status).toBe(201);
  const postId = (post.body as { id: string }).id;
  for (const content of ['nice', 'orange']) {
    const comment = await api.createComment(postId, content);
    // The course's 201: the new comment as its own event created it, however soon it is moderated.
    expect([comment.status, comment.body.at(-1)]).toEqual([
      201,
      { id: expect.any(String), content, status: 'pending' },
    ]);
  }
  await waitFor(
    async () => {
      const comments = (await api.query())[postId]?.comments ?? [];
      return comments.length === 2 && comments.every((comment) => comment.status !== 'pending');
    },
    { message: 'query did not see both comments moderated' },
  );
  return postId;
}

/** The course's flow without query running: a post and two comments, until both are updated in comments. */
async function courseFlowWithoutQuery(api: ReturnType<typeof blogClient>) {
  const postId = ((await api.createPost('Before query')).body as { id: string }).id;
  expect((await api.createComment(postId, 'nice')).status).toBe(201);
  expect((await api.createComment(postId, 'orange')).status).toBe(201);
  await waitFor(async () => (await api.events()).length === 7, { message: 'the flow did not complete' });
  return postId;
}

const shared = natsAvailability();

describe.skipIf(shared.skip)('the services over NATS JetStream', () => {
  const nats = useNats();

  it('run the course flow: reactions published through the stream, each once', async () => {
    stack = await startNatsStack(nats().url);
    const api = blogClient(stack.urls);
    const postId = await courseFlow(api);
    expect((await api.query())[postId]!.comments.map((c) => c.status).sort()).toEqual([
      'approved',
      'rejected',
    ]);
    // Comments' own view, after its CommentUpdated reactions.
    expect((await api.comments(postId)).map((c: { status: string }) => c.status).sort()).toEqual([
      'approved',
      'rejected',
    ]);

    const events = await api.events();
    expect(events.map((event) => event.type).sort()).toEqual(
      [
        'PostCreated',
        'CommentCreated',
        'CommentCreated',
        'CommentModerated',
        'CommentModerated',
        'CommentUpdated',
        'CommentUpdated',
      ].sort(),
    );
    expect(events.map((event) => event.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    // Each service has its durable consumer, all caught up.
    await waitFor(async () => {
      const subscribers = (await api.subscribers()) as { name: string; lag: number }[];
      return subscribers.length === 4 && subscribers.every((s) => s.lag === 0);
    });
    expect(((await api.subscribers()) as { name: string }[]).map((s) => s.name)).toEqual([
      'comments',
      'moderation',
      'posts',
      'query',
    ]);
  });

  it('rebuild their state from the stream at restart, and get what they missed while down', async () => {
    stack = await startNatsStack(nats().url);
    const api = blogClient(stack.urls);
    const postId = await courseFlow(api);
    const before = await api.query();

    // query and moderation go away; a comment is made meanwhile.
    await stack.stopService('query');
    await stack.stopService('moderation');
    expect((await api.createComment(postId, 'while they were away')).status).toBe(201);

    // New processes, nothing in memory: the replay, then their consumers, bring them up to date.
    const query = await stack.startService('query');
    await stack.startService('moderation');
    const restarted = blogClient(stack.urls);
    expect((await restarted.query())[postId]!.comments.slice(0, 2)).toEqual(before[postId]!.comments);
    await waitFor(async () => (await restarted.query())[postId]!.comments[2]?.status === 'approved', {
      message: 'the comment made while moderation was down was never moderated',
    });
    // Moderated once, although moderation replayed every CommentCreated at its start.
    const events = await restarted.events();
    expect(events.filter((event: StoredEvent) => event.type === 'CommentModerated')).toHaveLength(3);
    expect(query.subscriber.appliedSeq).toBe(events.length);
  });

  it('start a new consumer after what they replayed: a first start gets nothing twice', async () => {
    stack = await startNatsStack(nats().url, { names: ['posts', 'comments', 'moderation'] });
    const api = blogClient(stack.urls);
    const postId = await courseFlowWithoutQuery(api);
    const replayed = (await api.events()).length;

    // query's first start on this stream: its replay brings the 7 events, its new consumer only later ones.
    const query = await stack.startService('query');
    expect(query.subscriber.appliedSeq).toBe(replayed);
    expect((await api.createComment(postId, 'after query came')).status).toBe(201);
    await waitFor(async () => (await api.query())[postId]?.comments[2]?.status === 'approved');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: nats().url });
    try {
      const info = await (await jetstreamManager(nc)).consumers.info(stack.stream, 'query');
      expect(info.config).toMatchObject({ ack_policy: 'all', opt_start_seq: replayed + 1 });
      // Delivered: the comment, its moderation and its update; none of the 7 replayed.
      expect(info.delivered.consumer_seq).toBe(3);
      expect(info.num_redelivered).toBe(0);
    } finally {
      await nc.close();
    }
  });
});

const own = natsAvailability({ needs: 'binary' });

describe.skipIf(own.skip)('the services while NATS is down', () => {
  const server = useOwnNatsServer();

  it('answer 503 JSON to commands and on /readyz, then recover by themselves', async () => {
    stack = await startNatsStack(server().url);
    const api = blogClient(stack.urls);
    const postId = await courseFlow(api);

    await server().kill();
    const refused = await api.createPost('lost?');
    expect(refused.status).toBe(503);
    expect(refused.body.errors[0].message).toBe('NATS is unavailable, try again');
    await waitFor(async () => (await fetch(`${stack!.urls.query}/readyz`)).status === 503, {
      timeoutMs: 5000,
    });
    const readyz = (await (await fetch(`${stack.urls.query}/readyz`)).json()) as { reason: string };
    expect(readyz.reason).toBe('NATS is unavailable, try again');
    // Reads keep answering from memory.
    expect((await api.query())[postId]!.comments).toHaveLength(2);

    await server().restart();
    await waitFor(async () => (await api.createPost('after')).status === 201, { timeoutMs: 15_000 });
    await waitFor(async () => Object.values(await api.query()).some((post) => post.title === 'after'), {
      timeoutMs: 15_000,
    });
    await waitFor(async () => (await fetch(`${stack!.urls.query}/readyz`)).status === 200, {
      timeoutMs: 5000,
    });
  });
});
