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
