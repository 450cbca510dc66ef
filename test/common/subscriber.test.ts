import {
  derivedEventId,
  type BlogEvent,
  type Projection,
  type ServiceDefinition,
  type StoredEvent,
} from '@blog/common';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus } from '../../event-bus/src/app.js';
import { eventOfDeliveredSize } from '../support/bus-routes.js';
import { startStack, waitFor } from '../support/stack.js';

/** Counts what it applies and answers each PostCreated with a PostNoticed: enough to watch the runner. */
interface Seen {
  applied: string[];
}
const watcher: Projection<Seen> = {
  initial: () => ({ applied: [] }),
  apply(state, event: BlogEvent) {
    if (event.type === 'PostCreated') state.applied.push(event.data.id);
  },
  react(_state, event) {
    return event.type === 'PostCreated' ? [{ type: 'PostNoticed', data: { postId: event.data.id } }] : [];
  },
};
const definition: ServiceDefinition<Seen> = { name: 'query', projection: watcher };
// The bus delivers to a dead address, so only what the tests send reaches the service.
const noDelivery = { SUBSCRIBERS: 'elsewhere=http://127.0.0.1:9/events' };

let stack: Awaited<ReturnType<typeof startStack>> | undefined;
afterEach(async () => {
  await stack?.stop();
  stack = undefined;
});

const publishPosts = async (busUrl: string, ids: string[]) => {
  for (const id of ids)
    await request(busUrl)
      .post('/events')
      .send({ type: 'PostCreated', data: { id, title: id } })
      .expect(200);
};
const log = async (busUrl: string) => (await request(busUrl).get('/events')).body as StoredEvent[];

describe('subscriber', () => {
  it('rebuilds its state from the log at start, and reports ready only then', async () => {
    stack = await startStack([], { busEnv: noDelivery });
    const { dataDir } = stack;
    await publishPosts(stack.busUrl, ['a', 'b', 'c']);
    await stack.stop({ keepData: true });

    stack = await startStack([definition], { dataDir, busEnv: noDelivery });
    const service = stack.services.query!;
    expect(service.subscriber.state.applied).toEqual(['a', 'b', 'c']);
    expect(service.subscriber.appliedSeq).toBeGreaterThanOrEqual(3);
    await request(stack.urls.query!).get('/readyz').expect(200);
  });

  it('catches up with a log of more bytes than a page holds, page after page', async () => {
    stack = await startStack([], { busEnv: noDelivery });
    const { dataDir, busUrl } = stack;
    // 50 events of about 90 KB: 4.5 MB, more than one page of the bus carries (PAGE_MAX_BYTES).
    for (let i = 1; i <= 50; i++)
      await request(busUrl)
        .post('/events')
        .send(eventOfDeliveredSize(90_000, `big-${i}`))
        .expect(200);
    await publishPosts(busUrl, ['after-the-big-ones']);
    await stack.stop({ keepData: true });

    stack = await startStack([definition], { dataDir, busEnv: noDelivery });
    const service = stack.services.query!;
    expect(service.subscriber.state.applied).toEqual(['after-the-big-ones']);
    expect(service.subscriber.appliedSeq).toBeGreaterThanOrEqual(51);
  });

  it('applies each seq once, fills a gap from the bus, and refuses a seq past the head', async () => {
    stack = await startStack([definition], { busEnv: noDelivery });
    const { busUrl } = stack;
    const service = stack.services.query!;
    await publishPosts(busUrl, ['p1', 'p2', 'p3']);
    const events = await log(busUrl);
    const third = events.find((e) => e.data.id === 'p3')!;

    // The third arrives first: the service fetches the two before it.
    await request(stack.urls.query!)
      .post('/events')
      .send(third)
      .expect(200, {})
      .expect('X-Events-Acked', String(third.seq));
    expect(service.subscriber.state.applied.slice(-3)).toEqual(['p1', 'p2', 'p3']);

    // Delivered again, alone or in a batch: acknowledged, not applied twice.
    await request(stack.urls.query!).post('/events').send(third).expect(200);
    await request(stack.urls.query!).post('/events').send(events).expect(200);
    expect(service.subscriber.state.applied.filter((id: string) => id === 'p3')).toHaveLength(1);

    const res = await request(stack.urls.query!)
      .post('/events')
      .send({ ...third, seq: third.seq + 100 })
      .expect(409);
    expect(res.body.errors[0]).toMatchObject({ field: 'seq' });
  });

  it('refuses a seq that is not in the log with the same 409 whatever the head, naming no seq', async () => {
    stack = await startStack([definition], { busEnv: noDelivery });
    const query = stack.urls.query!;
    const pastTheHead = async () => {
      const head = (await log(stack!.busUrl)).length;
      const res = await request(query)
        .post('/events')
        .send({ type: 'PostCreated', data: { id: 'forged', title: 'forged' }, seq: head + 1 + head * 7 })
        .expect(409);
      return res.text;
    };
    await publishPosts(stack.busUrl, ['h1', 'h2', 'h3']);
    const first = await pastTheHead();
    await publishPosts(stack.busUrl, ['h4', 'h5', 'h6', 'h7', 'h8']);
    const second = await pastTheHead();
    expect(second).toBe(first);
    expect(first).not.toMatch(/\d/);
    expect(JSON.parse(first)).toEqual({
      errors: [{ message: 'This seq is not in the event log', field: 'seq' }],
    });
    expect(stack.services.query!.subscriber.state.applied).not.toContain('forged');
  });

  it('applies an event without seq as it comes (curl, or a course-original bus)', async () => {
    stack = await startStack([definition], { busEnv: noDelivery });
    await request(stack.urls.query!)
      .post('/events')
      .send({ type: 'PostCreated', data: { id: 'x', title: 'x' } })
      .expect(200);
    expect(stack.services.query!.subscriber.state.applied).toEqual(['x']);
  });

  it('publishes a reaction once under its derived id, even when the trigger is delivered again', async () => {
    stack = await startStack([definition]);
    await publishPosts(stack.busUrl, ['r1']);
    const trigger = (await log(stack.busUrl)).find((e) => e.type === 'PostCreated')!;
    await waitFor(async () => (await log(stack!.busUrl)).some((e) => e.type === 'PostNoticed'));
    await request(stack.urls.query!)
      .post('/events')
      .send({ ...trigger, seq: undefined })
      .expect(200);
    const noticed = (await log(stack.busUrl)).filter((e) => e.type === 'PostNoticed');
    expect(noticed).toHaveLength(1);
    expect(noticed[0]!.id).toBe(derivedEventId(trigger, 'PostNoticed'));
  });

  it('hands its reactions back in the answer when the bus takes them there, until they are in the log', async () => {
    stack = await startStack([definition], { busEnv: noDelivery });
    const query = stack.urls.query!;
    const deliver = (event: object) =>
      request(query).post('/events').set('X-Events-Reply', 'accept').send(event).expect(200);
    const trigger = { type: 'PostCreated', data: { id: 'p1', title: 'p1' }, id: 'trigger-1' };
    const expected = {
      id: derivedEventId(trigger, 'PostNoticed'),
      type: 'PostNoticed',
      data: { postId: 'p1' },
    };

    const first = await deliver(trigger);
    expect(first.headers['x-events-reactions']).toBe('1');
    expect(first.body).toEqual({ events: [expected] });
    // Handed back, not published: the bus stores it when it reads the answer.
    expect((await log(stack.busUrl)).some((e) => e.type === 'PostNoticed')).toBe(false);

    // Still owed (this bus never stored it), so the next answer carries it again.
    const second = await deliver({ type: 'Nothing', data: {} });
    expect(second.body).toEqual({ events: [expected] });

    // Once the reaction comes back from the log, it is no longer owed.
    await request(stack.busUrl).post('/events').send(expected).expect(200);
    const stored = (await log(stack.busUrl)).find((e) => e.type === 'PostNoticed')!;
    const third = await deliver(stored);
    expect(third.headers['x-events-reactions']).toBeUndefined();
    expect(third.body).toEqual({});

    // Without the header (curl, a course-original bus) reactions are published as before.
    await request(query)
      .post('/events')
      .send({ type: 'PostCreated', data: { id: 'p2', title: 'p2' } })
      .expect(200, {});
    expect((await log(stack.busUrl)).filter((e) => e.type === 'PostNoticed')).toHaveLength(2);
  });

  it('gets from the bus only the types it acts on, and its appliedSeq reaches the head once the log is quiet', async () => {
    // Given a service that lists the one type it acts on, delivered to by a real bus
    const typed: ServiceDefinition<Seen> = {
      name: 'query',
      projection: { ...watcher, types: ['PostCreated'] },
    };
    stack = await startStack([typed]);
    const service = stack.services.query!;
    const bus = stack.bus;

    // When posts and events of other types are published (each post answered with a reaction)
    await publishPosts(stack.busUrl, ['first']);
    for (let i = 0; i < 3; i++)
      await request(stack.busUrl).post('/events').send({ type: 'Other', data: { i } });
    await publishPosts(stack.busUrl, ['second']);

    // Then the posts are applied, the bus passed over other types, and every seq up to the head counts as
    // applied once the log is quiet, without a gap read
    await waitFor(() => service.subscriber.appliedSeq === bus.store.headSeq());
    expect(service.subscriber.state.applied).toEqual(['first', 'second']);
    const metrics = await (await fetch(`${stack.busUrl}/metrics`)).text();
    expect(metrics).toMatch(/eventbus_cursor_passes_total\{subscriber="query",service="event-bus"\} [1-9]/);
    expect((await request(stack.busUrl).get('/subscribers')).body).toMatchObject([
      { name: 'query', types: ['PostCreated'], others: 'skip', lag: 0 },
    ]);
  });

  it('lets the bus skip the other types only while no one follows every event applied', async () => {
    const typed: ServiceDefinition<Seen> = {
      name: 'query',
      projection: { ...watcher, types: ['PostCreated'] },
    };
    stack = await startStack([typed], { busEnv: noDelivery });
    const service = stack.services.query!;
    const deliver = () =>
      request(stack!.urls.query!).post('/events').send({ type: 'Other', data: {} }).expect(200);
    expect((await deliver()).headers['x-events-others']).toBe('skip');
    const stopFollowing = service.subscriber.onApplied(() => undefined);
    expect((await deliver()).headers['x-events-others']).toBeUndefined();
    stopFollowing();
    expect((await deliver()).headers['x-events-others']).toBe('skip');
  });

  it('stops handing a reaction back once the bus says its cursor passed the trigger (X-Events-Cursor)', async () => {
    stack = await startStack([definition], { busEnv: noDelivery });
    await publishPosts(stack.busUrl, ['c1', 'c2', 'c3']);
    const [first, second, third] = await log(stack.busUrl);
    const deliver = (event: object, busCursor: number) =>
      request(stack!.urls.query!)
        .post('/events')
        .set('X-Events-Reply', 'accept')
        .set('X-Events-Cursor', String(busCursor))
        .send(event)
        .expect(200);
    const owed = (res: { body: { events?: { data: { postId: string } }[] } }) =>
      (res.body.events ?? []).map((reaction) => reaction.data.postId);

    expect(owed(await deliver(first!, 0))).toEqual(['c1']);
    // Cursor 0: the answer to seq 1 may not have reached the bus, so c1's reaction is still owed.
    expect(owed(await deliver(second!, 0))).toEqual(['c1', 'c2']);
    // A cursor past what this service acknowledged cannot come from the bus: it changes nothing.
    expect(owed(await deliver(third!, 99))).toEqual(['c1', 'c2', 'c3']);
    // Cursor 2: the answers to seq 1 and 2 were stored with them; only c3's is still owed.
    expect(owed(await deliver(third!, 2))).toEqual(['c3']);
    expect((await deliver(third!, 3)).body).toEqual({});
  });

  it('publishes at start a reaction the log lacks (the service died before publishing it)', async () => {
    stack = await startStack([], {});
    const { dataDir } = stack;
    await publishPosts(stack.busUrl, ['lost']);
    await stack.stop({ keepData: true });

    stack = await startStack([definition], { dataDir, busEnv: noDelivery });
    await waitFor(async () => (await log(stack!.busUrl)).some((e) => e.type === 'PostNoticed'));
    await stack.stop({ keepData: true });
    stack = await startStack([definition], { dataDir, busEnv: noDelivery });
    expect((await log(stack.busUrl)).filter((e) => e.type === 'PostNoticed')).toHaveLength(1);
  });

  it('answers 503 while a reaction cannot be published, and publishes it once the bus is back', async () => {
    stack = await startStack([definition], { busEnv: noDelivery });
    const { busUrl } = stack;
    await stack.bus.stop();
    const res = await request(stack.urls.query!)
      .post('/events')
      .send({ type: 'PostCreated', data: { id: 'late', title: 'late' } })
      .expect(503);
    expect(res.body.errors[0].message).toMatch(/could not publish PostNoticed/);

    const port = new URL(busUrl).port;
    const again = createBus({
      env: { PORT: port, DATA_DIR: stack.dataDir, ...noDelivery, LOG_LEVEL: 'silent' },
    });
    await again.start();
    try {
      await request(stack.urls.query!).post('/events').send({ type: 'Nothing', data: {} }).expect(200);
      expect((await log(busUrl)).filter((e) => e.type === 'PostNoticed')).toHaveLength(1);
    } finally {
      await again.stop();
    }
  });
});
