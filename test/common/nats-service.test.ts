import type { AddressInfo } from 'node:net';
import { createService, replicaName, type ServiceDefinition, type StoredEvent } from '@blog/common';
import { connect } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { startNatsCluster, type NatsCluster } from '@blog/common/nats-cluster';
import { uniqueStreamName } from '@blog/common/nats-server';
import { natsAvailability } from '@blog/common/testing';
import { useNats, useOwnNatsServer } from '../support/nats.js';
import { blogClient } from '../support/client.js';
import { startNatsStack, type NatsStack } from '../support/nats-stack.js';
import { waitFor } from '../support/stack.js';
import { commentsProjection } from '../../comments/src/projection.js';
import { commentsRoutes } from '../../comments/src/routes.js';
import { moderationProjection } from '../../moderation/src/projection.js';
import { postsProjection } from '../../posts/src/projection.js';
import { postsRoutes } from '../../posts/src/routes.js';
import { createQueryService } from '../../query/src/service.js';

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
  expect((await api.createComment(postId, 'nice')).status).toBe(201);
  expect((await api.createComment(postId, 'orange')).status).toBe(201);
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
    // Each service reads with a consumer of its own replica, all caught up.
    await waitFor(async () => {
      const subscribers = (await api.subscribers()) as { name: string; lag: number }[];
      return subscribers.length === 4 && subscribers.every((s) => s.lag === 0);
    });
    const subscribers = (await api.subscribers()) as { name: string; kind: string }[];
    expect(subscribers.map((s) => s.kind)).toEqual(['replica', 'replica', 'replica', 'replica']);
    expect(subscribers.map((s) => s.name.slice(0, s.name.indexOf('-')))).toEqual([
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

  it('start delivery after what they replayed: a first start gets nothing twice', async () => {
    stack = await startNatsStack(nats().url, { names: ['posts', 'comments', 'moderation'] });
    const api = blogClient(stack.urls);
    const postId = await courseFlowWithoutQuery(api);
    const replayed = (await api.events()).length;

    // query's first start on this stream: its replay brings the 7 events, its consumer only later ones.
    const query = await stack.startService('query');
    expect(query.subscriber.appliedSeq).toBe(replayed);
    expect((await api.createComment(postId, 'after query came')).status).toBe(201);
    await waitFor(async () => (await api.query())[postId]?.comments[2]?.status === 'approved');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: nats().url });
    try {
      const jsm = await jetstreamManager(nc);
      const infos = [];
      for await (const info of jsm.consumers.list(stack.stream)) infos.push(info);
      const info = infos.find((candidate) => candidate.name.startsWith(replicaName('query')))!;
      expect(info.config).toMatchObject({ ack_policy: 'none', opt_start_seq: replayed + 1 });
      // Delivered: the comment, its moderation and its update; none of the 7 replayed.
      await waitFor(
        async () => (await jsm.consumers.info(stack!.stream, info.name)).delivered.consumer_seq === 3,
      );
    } finally {
      await nc.close();
    }
  });

  it('run two replicas of each service: both views complete and equal, each reaction stored once', async () => {
    stack = await startNatsStack(nats().url);
    const names = ['posts', 'comments', 'query', 'moderation'] as const;
    const seconds = await Promise.all(names.map((name) => startReplica(stack!, name)));
    const [, secondComments, secondQuery] = seconds;
    const first = blogClient(stack.urls);
    const second = blogClient({ ...stack.urls, comments: secondComments!.url, query: secondQuery!.url });
    // Writes to both replicas of comments: every moderation replica decides every comment.
    const postId = ((await first.createPost('Twice')).body as { id: string }).id;
    await waitFor(async () => (await second.query())[postId] !== undefined);
    for (let i = 0; i < 6; i++) {
      const api = i % 2 ? second : first;
      expect((await api.createComment(postId, i === 3 ? 'orange' : `c${i}`)).status).toBe(201);
    }
    const settled = async (api: ReturnType<typeof blogClient>) => {
      const comments = (await api.query())[postId]?.comments ?? [];
      return comments.length === 6 && comments.every((comment) => comment.status !== 'pending');
    };
    await waitFor(async () => (await settled(first)) && (await settled(second)), {
      message: 'a query replica did not see every comment moderated',
    });
    expect(await second.query()).toEqual(await first.query());
    const events = (await first.events()) as StoredEvent[];
    const count = (type: string) => events.filter((event) => event.type === type).length;
    expect([count('CommentCreated'), count('CommentModerated'), count('CommentUpdated')]).toEqual([6, 6, 6]);
    expect(new Set(events.map((event) => event.id)).size).toBe(events.length);
    await Promise.all(seconds.map((replica) => replica.stop()));
  });
});

/** A replica of a service (a second one, on the stack's stream and settings), on a port of its own. */
async function startReplica(on: Pick<NatsStack, 'env'>, name: 'posts' | 'comments' | 'query' | 'moderation') {
  const definitions = {
    posts: { name: 'posts', projection: postsProjection, routes: postsRoutes },
    comments: { name: 'comments', projection: commentsProjection, routes: commentsRoutes },
    moderation: { name: 'moderation', projection: moderationProjection },
  } as const;
  const service =
    name === 'query'
      ? createQueryService({ env: on.env })
      : createService(definitions[name] as ServiceDefinition<unknown>, { env: on.env });
  const server = await service.start();
  await waitFor(() => service.subscriber.caughtUp, { message: `the second ${name} did not catch up` });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    stop: () => service.stop(),
  };
}

const own = natsAvailability({ needs: 'binary' });

describe.skipIf(own.skip)('the services on a three-node NATS cluster', () => {
  let cluster: NatsCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('keep every event on three nodes with NATS_REPLICAS=3, and take writes with a node SIGKILLed', async () => {
    cluster = await startNatsCluster({ nodes: 3 });
    const stream = uniqueStreamName('cluster');
    const env = {
      PORT: '0',
      EVENT_TRANSPORT: 'nats',
      NATS_URL: cluster.url,
      NATS_STREAM: stream,
      NATS_REPLICAS: '3',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    };
    const started = [];
    try {
      for (const name of ['posts', 'query', 'query'] as const)
        started.push(await startReplica({ env }, name));
      const [posts, queryA, queryB] = started;
      const titles = async (url: string) =>
        Object.values((await (await fetch(`${url}/posts`)).json()) as Record<string, { title: string }>)
          .map((post) => post.title)
          .sort();
      const createPost = (title: string) =>
        fetch(`${posts!.url}/posts`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({ title }),
        });
      expect((await createPost('before')).status).toBe(201);

      const { jetstreamManager } = await import('@nats-io/jetstream');
      const nc = await connect({ servers: cluster.url.split(',') });
      let leader: string;
      try {
        const info = await (await jetstreamManager(nc)).streams.info(stream);
        expect(info.config.num_replicas).toBe(3);
        expect(info.cluster?.replicas).toHaveLength(2);
        leader = info.cluster!.leader!;
      } finally {
        await nc.close();
      }
      await cluster.nodes[Number(leader.slice(1))]!.kill();
      // 503 while the others elect a leader, then written on the two that run.
      await waitFor(async () => (await createPost('during')).status === 201, { timeoutMs: 60_000 });
      for (const query of [queryA!, queryB!]) {
        await waitFor(async () => (await titles(query.url)).includes('during'), { timeoutMs: 60_000 });
        expect(await titles(query.url)).toEqual(['before', 'during']);
      }
    } finally {
      await Promise.all(started.map((replica) => replica.stop()));
    }
  }, 180_000);
});

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
