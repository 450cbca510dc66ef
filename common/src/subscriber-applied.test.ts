import { describe, expect, it } from 'vitest';
import type { StoredEvent } from './events.js';
import { createLogger } from './logger.js';
import { createMetrics } from './metrics.js';
import { Subscriber, type Projection } from './subscriber.js';
import type { EventTransport } from './transport.js';

// A log in memory behind the transport interface: enough to watch onApplied without a bus.
const logOf = (events: StoredEvent[]): EventTransport => ({
  publish: async () => ({ seq: events.length + 1, id: 'x' }),
  fetchAfter: async (after, limit) => ({ events: events.filter((e) => e.seq > after).slice(0, limit) }),
  close: () => undefined,
});
const titles: Projection<string[]> = {
  initial: () => [],
  apply(state, event) {
    if (event.type === 'PostCreated') state.push(event.data.title);
  },
};
const post = (seq: number): StoredEvent => ({
  seq,
  id: `e${seq}`,
  type: 'PostCreated',
  data: { id: `p${seq}`, title: `T${seq}` },
});

describe('Subscriber.onApplied', () => {
  it('tells each listener of every event, in order, after the state has it; a throwing one harms nothing', async () => {
    const subscriber = new Subscriber(
      titles,
      logOf([post(1), post(2)]),
      createLogger('query', 'silent'),
      createMetrics('query'),
    );
    const seen: Array<[number | undefined, number]> = [];
    subscriber.onApplied(() => {
      throw new Error('a broken listener');
    });
    const remove = subscriber.onApplied((event) => seen.push([event.seq, subscriber.state.length]));
    await subscriber.start();
    await subscriber.receive([{ type: 'PostCreated', data: { id: 'h', title: 'by hand' } }]);
    expect(seen).toEqual([
      [1, 1],
      [2, 2],
      [undefined, 3],
    ]);
    expect(subscriber.state).toEqual(['T1', 'T2', 'by hand']);

    remove();
    await subscriber.receive([post(3)]);
    expect(seen).toHaveLength(3);
    expect(subscriber.state).toHaveLength(4);
  });
});

describe('Subscriber.start', () => {
  const subscriberOn = (transport: EventTransport) =>
    new Subscriber(titles, transport, createLogger('posts', 'silent'), createMetrics('posts'));

  it('reads on past a short page until one comes back empty', async () => {
    const log = [1, 2, 3, 4, 5].map(post);
    // Pages of two events, as a bus ends a page of large events at its byte budget; no head given.
    const subscriber = subscriberOn({
      ...logOf(log),
      fetchAfter: async (after) => ({ events: log.filter((e) => e.seq > after).slice(0, 2) }),
    });
    expect(await subscriber.start()).toBe(5);
    expect(subscriber.state).toEqual(['T1', 'T2', 'T3', 'T4', 'T5']);
  });

  it('stops at the head the first page reported, though events keep coming', async () => {
    const log = [1, 2, 3].map(post);
    // Every read finds one more event published since: only the head ends this catch-up.
    const subscriber = subscriberOn({
      ...logOf(log),
      async fetchAfter(after) {
        const headSeq = log.length;
        log.push(post(log.length + 1));
        return { events: log.filter((e) => e.seq > after && e.seq <= headSeq).slice(0, 1), headSeq };
      },
    });
    expect(await subscriber.start()).toBe(3);
    expect(subscriber.state).toEqual(['T1', 'T2', 'T3']);
  });
});

describe('Subscriber.publishAndApply', () => {
  it('answers as soon as the delivery brings its event, without reading the log', async () => {
    const log = [post(1)];
    let reads = 0;
    const transport: EventTransport = {
      // The bus stored one event of someone else's before ours: ours is not the next one here.
      async publish() {
        log.push(post(2), post(3));
        return { seq: 3, id: 'e3' };
      },
      async fetchAfter(after, limit) {
        reads++;
        return { events: log.filter((e) => e.seq > after).slice(0, limit) };
      },
      close: () => undefined,
    };
    const subscriber = new Subscriber(
      titles,
      transport,
      createLogger('posts', 'silent'),
      createMetrics('posts'),
    );
    await subscriber.start();
    const readsAtStart = reads;

    const command = subscriber.publishAndApply({ type: 'PostCreated', data: { id: 'p3', title: 'T3' } });
    // The delivery, right behind the publish's answer, as the bus sends it: once the command waits for it.
    await new Promise((resolve) => setImmediate(resolve));
    let answered = false;
    void command.then(() => (answered = true));
    await subscriber.receive([post(2), post(3)]);
    await new Promise((resolve) => setImmediate(resolve));
    // Answered right away, not after the 5 ms it would wait before reading the gap from the log.
    expect(answered).toBe(true);
    expect(subscriber.state).toEqual(['T1', 'T2', 'T3']);
    expect(reads).toBe(readsAtStart);
  });
});

describe('Subscriber.publishAndApply with a view', () => {
  // Comment statuses by id: a later CommentModerated changes what the command's own CommentCreated made.
  const statuses: Projection<Map<string, string>> = {
    initial: () => new Map(),
    apply(state, event) {
      if (event.type === 'CommentCreated' || event.type === 'CommentModerated') {
        state.set(event.data.id, event.data.status);
      }
    },
  };
  const created = {
    type: 'CommentCreated',
    data: { id: 'c1', postId: 'p1', content: 'hi', status: 'pending' },
  };
  const moderated = (seq: number): StoredEvent => ({
    seq,
    id: `e${seq}`,
    type: 'CommentModerated',
    data: { id: 'c1', postId: 'p1', content: 'hi', status: 'approved' },
  });
  const subscriberOn = (transport: EventTransport) =>
    new Subscriber(statuses, transport, createLogger('comments', 'silent'), createMetrics('comments'));
  const statusOfC1 = (state: Map<string, string>) => state.get('c1');

  it('shows the state as of its own event when the gap it reads holds a later one too', async () => {
    const log: StoredEvent[] = [post(1)];
    const subscriber = subscriberOn({
      ...logOf(log),
      // Someone's event is stored before ours, and the moderation of ours right after it: reading the
      // gap up to our seq brings all three in one page, as a bus answers a read of everything after a seq.
      async publish(event) {
        const id = event.id ?? 'no-id';
        log.push(post(2), { ...event, seq: 3, id }, moderated(4));
        return { seq: 3, id };
      },
    });
    await subscriber.start();

    const answer = await subscriber.publishAndApply(created, statusOfC1);
    expect(answer).toMatchObject({ seq: 3, view: 'pending' });
    expect(subscriber.state.get('c1')).toBe('approved');
    expect(subscriber.appliedSeq).toBe(4);
  });

  it('shows the state as of its own event when the delivery applied it and a later one first', async () => {
    const log: StoredEvent[] = [];
    const subscriber: Subscriber<Map<string, string>> = subscriberOn({
      ...logOf(log),
      // The delivery brings our event and its moderation before the publish's answer reaches us.
      async publish(event) {
        const id = event.id ?? 'no-id';
        log.push({ ...event, seq: 1, id }, moderated(2));
        await subscriber.receive([...log]);
        return { seq: 1, id };
      },
    });
    await subscriber.start();

    const answer = await subscriber.publishAndApply(created, statusOfC1);
    expect(answer).toMatchObject({ seq: 1, view: 'pending' });
    expect(subscriber.state.get('c1')).toBe('approved');
  });

  it('has no view when the event is stored but the bus goes away before it is applied here', async () => {
    const subscriber = subscriberOn({
      ...logOf([]),
      publish: async (event) => ({ seq: 2, id: event.id ?? 'no-id' }),
      fetchAfter: async () => {
        throw new Error('connect ECONNREFUSED');
      },
    });
    const answer = await subscriber.publishAndApply(created, statusOfC1);
    expect(answer).toEqual({ seq: 2, id: expect.any(String) });
    expect(subscriber.state.size).toBe(0);
  });
});
