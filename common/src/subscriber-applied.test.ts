import { describe, expect, it, vi } from 'vitest';
import type { StoredEvent } from './events.js';
import { createLogger } from './logger.js';
import { createMetrics } from './metrics.js';
import type { Projection } from './projection.js';
import { APPLY_SLICE, Subscriber } from './subscriber.js';
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

  it('counts every event applied in its metric, by type, for a scrape right after', async () => {
    const metrics = createMetrics('posts');
    const subscriber = new Subscriber(
      titles,
      logOf([1, 2, 3].map(post)),
      createLogger('posts', 'silent'),
      metrics,
    );
    await subscriber.start();
    await subscriber.receive([post(4), { seq: 5, id: 'e5', type: 'CommentCreated', data: { id: 'c' } }]);
    const counted = await metrics.eventsApplied.get();
    expect(counted.values.map(({ labels, value }) => [labels.type, value])).toEqual([
      ['PostCreated', 4],
      ['CommentCreated', 1],
    ]);
  });

  it('gives the event loop a turn every APPLY_SLICE events of a page, and still applies the page whole', async () => {
    const size = 2 * APPLY_SLICE + APPLY_SLICE / 2;
    const log = Array.from({ length: size }, (_, i) => post(i + 1));
    const appliedAtTurns: number[] = [];
    const subscriber = subscriberOn({
      ...logOf(log),
      // One page of them all; what else waits on the event loop (the socket reading the next page) watches.
      async fetchAfter(after) {
        const watch = () => {
          appliedAtTurns.push(subscriber.state.length);
          if (subscriber.state.length < size) setImmediate(watch);
        };
        if (after === 0) setImmediate(watch);
        return { events: log.filter((e) => e.seq > after) };
      },
    });
    expect(await subscriber.start()).toBe(size);
    expect(subscriber.state).toHaveLength(size);
    // Turns came while the page was being applied, at every slice.
    expect(appliedAtTurns.filter((applied) => applied > 0 && applied < size).length).toBeGreaterThanOrEqual(
      2,
    );
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

describe('Subscriber.receive with X-Events-Through', () => {
  /** A log in memory that counts its reads, behind the transport interface. */
  const countingLog = (events: StoredEvent[]) => {
    const log = { events, reads: 0 };
    const transport: EventTransport = {
      publish: async (event) => {
        const seq = log.events.length + 1;
        log.events.push({ ...event, seq, id: event.id ?? `e${seq}` });
        return { seq, id: event.id ?? `e${seq}` };
      },
      async fetchAfter(after, limit) {
        log.reads++;
        return { events: log.events.filter((e) => e.seq > after).slice(0, limit) };
      },
      close: () => undefined,
    };
    return { log, transport };
  };
  const comment = (seq: number): StoredEvent => ({
    seq,
    id: `e${seq}`,
    type: 'CommentCreated',
    data: { id: `c${seq}`, postId: 'p1', content: 'hi', status: 'pending' },
  });
  const subscriberOn = (transport: EventTransport) =>
    new Subscriber(
      { ...titles, types: ['PostCreated'] },
      transport,
      createLogger('posts', 'silent'),
      createMetrics('posts'),
    );

  /** A service caught up with a log of one post, to which `later` is then added. */
  const startedAtSeq1 = async (later: StoredEvent[]) => {
    const { log, transport } = countingLog([post(1)]);
    const subscriber = subscriberOn(transport);
    await subscriber.start();
    log.events.push(...later);
    return { log, subscriber };
  };

  it('counts the seqs the bus passed over as applied, without reading them from the log', async () => {
    // Given a service at seq 1, and a log whose seqs 2, 3 and 5 are of a type it does not act on
    const { log, subscriber } = await startedAtSeq1([comment(2), comment(3), post(4), comment(5)]);
    const readsAtStart = log.reads;

    // When the bus delivers seq 4 alone, from its cursor 1 through seq 5
    await subscriber.receive([post(4)], { busCursor: 1, through: 5 });

    // Then 2, 3 and 5 count as applied, 4 is applied, and nothing was read from the log
    expect(subscriber.appliedSeq).toBe(5);
    expect(subscriber.state).toEqual(['T1', 'T4']);
    expect(log.reads).toBe(readsAtStart);
  });

  it('reads from the log what lies below the bus cursor and it lacks, then passes over the rest', async () => {
    // Given a service at seq 1 while the bus's cursor is at 3 (seq 2 and 3 dead-lettered, say)
    const { log, subscriber } = await startedAtSeq1([post(2), post(3), comment(4), post(5)]);
    const readsBefore = log.reads;

    // When the bus delivers seq 5 from its cursor 3
    await subscriber.receive([post(5)], { busCursor: 3, through: 5 });

    // Then 2 and 3 are read and applied, 4 passed over, 5 applied
    expect(subscriber.state).toEqual(['T1', 'T2', 'T3', 'T5']);
    expect(subscriber.appliedSeq).toBe(5);
    expect(log.reads).toBeGreaterThan(readsBefore);
  });

  it('still reads a gap from the log when the delivery does not say what was passed over', async () => {
    const { subscriber } = await startedAtSeq1([post(2), post(3)]);
    await subscriber.receive([post(3)], { busCursor: 1 });
    expect(subscriber.state).toEqual(['T1', 'T2', 'T3']);
  });
});

describe('Subscriber.publishAndApply, waiting for its delivery', () => {
  const subscriberOn = (transport: EventTransport, types?: Projection<string[]>['types']) =>
    new Subscriber({ ...titles, types }, transport, createLogger('posts', 'silent'), createMetrics('posts'));
  /** A bus that stored someone else's event (seq 2) before the command's (seq 3), counting the reads. */
  const busWithOneBefore = () => {
    const state = { log: [post(1)], reads: 0 };
    const transport: EventTransport = {
      async publish(event) {
        const id = event.id ?? 'no-id';
        state.log.push(post(2), { ...event, seq: 3, id } as StoredEvent);
        return { seq: 3, id };
      },
      async fetchAfter(after, limit) {
        state.reads++;
        return { events: state.log.filter((e) => e.seq > after).slice(0, limit) };
      },
      close: () => undefined,
    };
    return { state, transport };
  };
  const ownPost = { type: 'PostCreated', data: { id: 'p3', title: 'mine' } };
  const settle = () => new Promise((resolve) => setTimeout(resolve, 20));

  it('waits for the delivery of its own event, however late, without reading the log', async () => {
    // Given a command whose event is not the next one here
    const { state, transport } = busWithOneBefore();
    const subscriber = subscriberOn(transport);
    await subscriber.start();
    const readsAtStart = state.reads;
    const command = subscriber.publishAndApply(ownPost);

    // When the delivery comes later than a moment
    await settle();
    await subscriber.receive(state.log.slice(1));

    // Then the command answers from it, and never read the log
    expect(await command).toMatchObject({ seq: 3 });
    expect(subscriber.state).toEqual(['T1', 'T2', 'mine']);
    expect(state.reads).toBe(readsAtStart);
  });

  it('reads the log as soon as a delivery fails while it waits', async () => {
    // Timers stand still: the command can only answer through the failed delivery, not a timeout.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      // Given a command waiting for its event, and a bus whose next read fails
      const { state, transport } = busWithOneBefore();
      let failNextRead = false;
      const subscriber = subscriberOn({
        ...transport,
        fetchAfter: (after, limit) => {
          if (failNextRead) {
            failNextRead = false;
            return Promise.reject(new Error('connect ECONNREFUSED'));
          }
          return transport.fetchAfter(after, limit);
        },
      });
      await subscriber.start();
      const command = subscriber.publishAndApply(ownPost);
      await new Promise((resolve) => setImmediate(resolve));

      // When a delivery fails (its gap cannot be read)
      failNextRead = true;
      state.log.push(post(4), post(5));
      await expect(subscriber.receive([post(5)])).rejects.toThrow();

      // Then the command reads its event from the log and answers
      expect(await command).toMatchObject({ seq: 3 });
      expect(subscriber.state.slice(0, 3)).toEqual(['T1', 'T2', 'mine']);
    } finally {
      vi.useRealTimers();
    }
  });

  it('applies its own event in place when the bus passes over its seq', async () => {
    // Given a service whose types leave out its own command's type, and a command waiting for seq 3
    const { state, transport } = busWithOneBefore();
    const subscriber = subscriberOn(transport, ['CommentCreated']);
    await subscriber.start();
    const readsAtStart = state.reads;
    const command = subscriber.publishAndApply(ownPost);
    await settle();

    // When the bus says it passed over everything from its cursor 1 through seq 3
    await subscriber.receive([], { busCursor: 1, through: 3 });

    // Then the command's event is applied at its seq, without a read of the log
    expect(await command).toMatchObject({ seq: 3 });
    expect(subscriber.state).toEqual(['T1', 'mine']);
    expect(subscriber.appliedSeq).toBe(3);
    expect(state.reads).toBe(readsAtStart);
  });
});
