import { Writable } from 'node:stream';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startNatsCluster, type NatsCluster } from '@blog/common/nats-cluster';
import { uniqueStreamName } from '@blog/common/nats-server';
import { natsAvailability } from '@blog/common/testing';
import { useNats, useOwnNatsServer } from '../../test/support/nats.js';
import { settlesBefore, waitFor } from '../../test/support/wait-for.js';
import type { StoredEvent } from './events.js';
import { PAGE_MAX_BYTES } from './limits.js';
import { loadNats } from './nats-libraries.js';
import {
  LEGACY_DURABLE_IDLE_MS,
  NatsTransport,
  replicaName,
  REPLAY_CONSUMER_PREFIX,
  type PublishResult,
} from './nats-transport.js';
import { TransportError, type EventPage, type PublishOptions } from './transport.js';

// NatsTransport against a real nats-server (JetStream, file storage): BLOG_NATS_URL if CI started one,
// else one of this file's own. The tests that kill NATS start their own server, always.

const transports: NatsTransport[] = [];
function transportOn(
  url: string,
  stream = uniqueStreamName('transport'),
  log?: pino.Logger,
  // Room for a loaded machine: a test that needs a call to fail fast says so.
  timeoutMs = 10_000,
) {
  const transport = new NatsTransport({ url, stream, log, timeoutMs });
  transports.push(transport);
  return transport;
}
afterEach(async () => {
  await Promise.all(transports.splice(0).map((transport) => transport.close()));
});

/** A logger whose lines the test can read. */
function capturedLog(level = 'warn') {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level }, sink), lines };
}

/** The stream's consumers, as the server shows them: name, durable or not, delivered seq, pending. */
async function consumersOf(transport: NatsTransport) {
  const { jsm } = await transport.client.jetStream();
  const found = [];
  for await (const info of jsm.consumers.list(transport.stream)) {
    if (info.name.startsWith(REPLAY_CONSUMER_PREFIX)) continue;
    found.push({
      name: info.name,
      durable: Boolean(info.config.durable_name),
      delivered: info.delivered.stream_seq,
      pending: info.num_pending,
      ackPolicy: info.config.ack_policy,
      leader: info.cluster?.leader,
    });
  }
  return found;
}

/** A handler that records the seqs it is given, in order. */
function recorder() {
  const seqs: number[] = [];
  const handle = async (events: StoredEvent[]) => void seqs.push(...events.map((event) => event.seq));
  return { seqs, handle };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

const shared = natsAvailability();

describe.skipIf(shared.skip)('NatsTransport', () => {
  const nats = useNats();

  it('publishes with seq 1, 2, 3, keeps the id given or assigns one, and reads back the event', async () => {
    const transport = transportOn(nats().url);
    const first = await transport.publish({
      type: 'PostCreated',
      data: { id: 'p1', title: 'Hi' },
      id: 'mine',
    });
    const second = await transport.publish({
      type: 'Liked',
      data: {},
      extra: 'kept',
      seq: 99,
      time: 'never',
    });
    const third = await transport.publish({ type: 'Liked', data: {} });
    expect(first).toEqual({ seq: 1, id: 'mine', duplicate: false });
    expect(second).toMatchObject({ seq: 2, duplicate: false });
    expect(second.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(third.seq).toBe(3);
    expect(third.id).not.toBe(second.id);

    const { events, headSeq } = await transport.fetchAfter(0, 10);
    expect(headSeq).toBe(3);
    expect(events).toEqual([
      { seq: 1, id: 'mine', time: expect.any(String), type: 'PostCreated', data: { id: 'p1', title: 'Hi' } },
      // The publisher's seq and time are dropped: the stream's own are the event's.
      { seq: 2, id: second.id, time: expect.any(String), type: 'Liked', data: {}, extra: 'kept' },
      { seq: 3, id: third.id, time: expect.any(String), type: 'Liked', data: {} },
    ]);
    for (const event of events) {
      expect(new Date(event.time!).toISOString()).toBe(event.time);
      expect(Math.abs(Date.now() - Date.parse(event.time!))).toBeLessThan(60_000);
    }
  });

  it('stores an id once: publishing it again answers the first seq, duplicate: true', async () => {
    const transport = transportOn(nats().url);
    const event = { type: 'PostCreated', data: { id: 'p', title: 'once' }, id: 'same-id' };
    expect(await transport.publish(event)).toEqual({ seq: 1, id: 'same-id', duplicate: false });
    await transport.publish({ type: 'Other', data: {} });
    expect(await transport.publish(event)).toEqual({ seq: 1, id: 'same-id', duplicate: true });
    // Even with another body: the id is what counts, as on the HTTP bus.
    expect(await transport.publish({ ...event, data: { id: 'p', title: 'twice' } })).toMatchObject({
      seq: 1,
      duplicate: true,
    });
    expect((await transport.fetchAfter(0, 100)).events.map((e) => e.seq)).toEqual([1, 2]);
  });

  it('fetchAfter answers at most limit events after the seq, bounded by the head, [] at once at the end', async () => {
    // A fetch that waited for events still to come would wait for this timeout: a minute.
    const transport = transportOn(nats().url, undefined, undefined, 60_000);
    const atOnce = <T>(promise: Promise<T>) => settlesBefore(promise, 20_000, 'fetchAfter at the end');
    // An empty stream: nothing, without waiting.
    expect(await atOnce(transport.fetchAfter(0, 10_000))).toEqual({ events: [], headSeq: 0 });

    for (let i = 1; i <= 12; i++) await transport.publish({ type: 'T', data: { i } });
    const seqs = async (after: number, limit: number) =>
      (await transport.fetchAfter(after, limit)).events.map((event) => event.seq);
    expect(await seqs(0, 3)).toEqual([1, 2, 3]);
    expect(await seqs(3, 4)).toEqual([4, 5, 6, 7]);
    expect(await seqs(10, 100)).toEqual([11, 12]);
    expect(await seqs(0, 10_000)).toHaveLength(12);
    // Never waits for events still to come.
    expect(await atOnce(seqs(12, 10))).toEqual([]);
    expect(await atOnce(seqs(500, 10))).toEqual([]);
  });

  it('stores concurrent publishes in the order they were made, with no holes', async () => {
    const transport = transportOn(nats().url);
    const results = await Promise.all(
      Array.from({ length: 300 }, (_, i) => transport.publish({ type: 'T', data: { i }, id: `e-${i}` })),
    );
    expect(results.map((result) => result.seq)).toEqual(Array.from({ length: 300 }, (_, i) => i + 1));
    const { events } = await transport.fetchAfter(0, 10_000);
    expect(events.map((event) => (event.data as { i: number }).i)).toEqual(
      Array.from({ length: 300 }, (_, i) => i),
    );
  });

  it('reads a long stream in batches, the next only when asked for', async () => {
    const transport = transportOn(nats().url);
    await Promise.all(Array.from({ length: 2500 }, (_, i) => transport.publish({ type: 'T', data: { i } })));
    const batches: number[][] = [];
    for await (const batch of transport.read(0, 2500, 1000)) batches.push(batch.map((e) => e.seq));
    // The first pull is sized for events as large as the bus takes (1 MiB of them); the next ones for the
    // largest seen so far, up to 1000.
    expect(batches.map((batch) => batch.length)).toEqual([10, 1000, 1000, 490]);
    expect(batches.flat()).toEqual(Array.from({ length: 2500 }, (_, i) => i + 1));
    // A page from the middle, as a catch-up asks for it.
    const { events: page } = await transport.fetchAfter(1200, 100);
    expect(page.map((event) => event.seq)).toEqual(Array.from({ length: 100 }, (_, i) => 1201 + i));
  });

  it('ends a page of fetchAfter at PAGE_MAX_BYTES of messages; the next page goes on from its last seq', async () => {
    const transport = transportOn(nats().url);
    // 60 events of 90 KB: 5.4 MB, more than one page carries.
    const text = 'x'.repeat(90_000);
    for (let i = 1; i <= 60; i++) await transport.publish({ type: 'Big', data: { text }, id: `big-${i}` });
    const pages: EventPage['events'][] = [];
    for (let after = 0; ;) {
      const { events, headSeq } = await transport.fetchAfter(after, 10_000);
      expect(headSeq).toBe(60);
      if (events.length === 0) break;
      // What each message holds: the event as published.
      const bytes = events.reduce(
        (sum, { type, data, id }) => sum + Buffer.byteLength(JSON.stringify({ type, data, id })),
        0,
      );
      expect(bytes).toBeLessThanOrEqual(PAGE_MAX_BYTES);
      pages.push(events);
      after = events.at(-1)!.seq;
    }
    expect(pages.length).toBeGreaterThan(1);
    expect(pages.flat().map((event) => event.id)).toEqual(
      Array.from({ length: 60 }, (_, i) => `big-${i + 1}`),
    );
  });

  it('lets two clients create the same stream at once', async () => {
    const stream = uniqueStreamName('race');
    const [a, b] = [transportOn(nats().url, stream), transportOn(nats().url, stream)];
    const results = await Promise.all([
      a.publish({ type: 'A', data: {} }),
      b.publish({ type: 'B', data: {} }),
    ]);
    expect(results.map((result) => result.seq).sort()).toEqual([1, 2]);
    expect((await a.fetchAfter(0, 10)).events).toHaveLength(2);
  });

  it('delivers every event from the seq given, in order, through an ordered consumer of the replica', async () => {
    const stream = uniqueStreamName('consume');
    const transport = transportOn(nats().url, stream);
    for (let i = 1; i <= 5; i++) await transport.publish({ type: 'T', data: { i } });
    const { seqs, handle } = recorder();
    transport.consume('query', handle);
    await waitFor(() => seqs.length === 5);
    await transport.publish({ type: 'T', data: { i: 6 } });
    await waitFor(() => seqs.length === 6);
    expect(seqs).toEqual(range(1, 6));
    // Named after the service and the replica, acknowledging nothing, kept by the server for no one else.
    const [consumer, ...others] = await consumersOf(transport);
    expect(others).toEqual([]);
    expect(consumer).toMatchObject({ durable: false, ackPolicy: 'none', delivered: 6, pending: 0 });
    expect(consumer!.name).toMatch(new RegExp(`^${replicaName('query')}-[0-9a-f]+_\\d+$`));
    await transport.close();

    // Another process: nothing was kept for it, it reads from where it is told.
    const again = transportOn(nats().url, stream);
    await again.publish({ type: 'T', data: { i: 7 } });
    const later = recorder();
    again.consume('query', later.handle, 4);
    await waitFor(() => later.seqs.length === 4);
    expect(later.seqs).toEqual(range(4, 7));
  });

  it('gives two replicas of one projection on one stream every event each, in order', async () => {
    const stream = uniqueStreamName('replicas');
    const [a, b] = [transportOn(nats().url, stream), transportOn(nats().url, stream)];
    const [seenByA, seenByB] = [recorder(), recorder()];
    a.consume('query', seenByA.handle);
    b.consume('query', seenByB.handle);
    await waitFor(async () => (await consumersOf(a)).length === 2);
    await Promise.all(range(1, 100).map((i) => (i % 2 ? a : b).publish({ type: 'T', data: { i } })));
    await waitFor(() => seenByA.seqs.length === 100 && seenByB.seqs.length === 100);
    expect(seenByA.seqs).toEqual(range(1, 100));
    expect(seenByB.seqs).toEqual(range(1, 100));
  });

  it('reads again from the first seq not handled after handle threw, and never before it', async () => {
    const { log, lines } = capturedLog();
    const transport = transportOn(nats().url, uniqueStreamName('redeliver'), log);
    await transport.publish({ type: 'T', data: { i: 1 } });
    await transport.publish({ type: 'T', data: { i: 2 } });
    const calls: number[][] = [];
    const handled: number[] = [];
    let failures = 0;
    transport.consume('moderation', async (events) => {
      const seqs = events.map(({ seq }) => seq);
      calls.push(seqs);
      // A batch holding seq 3 fails twice: nothing of it counts.
      if (seqs.includes(3) && failures < 2) {
        failures++;
        throw new Error('the database is busy');
      }
      handled.push(...seqs);
    });
    await waitFor(() => handled.length === 2);
    await transport.publish({ type: 'T', data: { i: 3 } });
    await transport.publish({ type: 'T', data: { i: 4 } });
    await waitFor(() => handled.length === 4);
    expect(handled).toEqual([1, 2, 3, 4]);
    // Each new consumer started at 3: 1 and 2, handled, never came again.
    expect(calls.flat().filter((seq) => seq < 3)).toEqual([1, 2]);
    expect(calls.filter((seqs) => seqs.includes(3))).toHaveLength(3);
    expect(lines.filter((line) => line.msg === 'events not handled, read again later')).toHaveLength(2);
    // Each new consumer after a longer wait, while nothing gets handled.
    const restarts = lines.filter((line) => /a new one reads again/.test(String(line.msg)));
    expect(restarts.map((line) => [line.nextSeq, line.retryInMs])).toEqual([
      [3, 100],
      [3, 200],
    ]);
    // The failed consumers were deleted: one is left.
    await waitFor(async () => (await consumersOf(transport)).length === 1);
  });

  it('hands the messages that came meanwhile to one handle call, in order', async () => {
    const transport = transportOn(nats().url, uniqueStreamName('batch'));
    await Promise.all(range(1, 150).map((i) => transport.publish({ type: 'T', data: { i } })));
    const calls: number[][] = [];
    // The first call is held until NATS has sent every message to this client: they wait in its queue.
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
    transport.consume('query', async (events) => {
      calls.push(events.map((event) => event.seq));
      if (calls.length === 1) await firstHeld;
    });
    await waitFor(async () => (await consumersOf(transport))[0]?.delivered === 150);
    releaseFirst();
    await waitFor(() => calls.flat().length === 150);
    expect(calls.flat()).toEqual(range(1, 150));
    // What came while the first call ran is handed over together, not one message per call (the last few
    // may still have been on the wire when the first call ended).
    expect(calls.length).toBeLessThanOrEqual(3);

    // One event alone is handed over, never held back to fill a batch: nothing else will come.
    const before = calls.length;
    await transport.publish({ type: 'T', data: { i: 150 } });
    await waitFor(() => calls.length === before + 1);
    expect(calls[before]).toEqual([151]);
  });

  it('reads a failed batch again whole, in order', async () => {
    const { log } = capturedLog();
    const transport = transportOn(nats().url, uniqueStreamName('batch-fail'), log);
    await Promise.all(range(1, 20).map((i) => transport.publish({ type: 'T', data: { i } })));
    const failed: number[][] = [];
    const handled: number[][] = [];
    let fail = true;
    transport.consume('query', async (events) => {
      if (!fail) return void handled.push(events.map((event) => event.seq));
      failed.push(events.map((event) => event.seq));
      throw new Error('the database is busy');
    });
    await waitFor(() => failed.length === 1);
    // What had come when the first call was made (all 20, or the first of them).
    expect(failed[0]).toEqual(range(1, failed[0]!.length));
    fail = false;
    await waitFor(() => handled.flat().length === 20);
    // Read again, every event of it, in order (in one batch or several, as they come back).
    expect(handled.flat()).toEqual(range(1, 20));
  });

  it('gives the durable consumer of an older version an inactivity limit, once, and reads with its own', async () => {
    const { log, lines } = capturedLog('info');
    const stream = uniqueStreamName('legacy');
    const transport = transportOn(nats().url, stream, log);
    for (let i = 1; i <= 6; i++) await transport.publish({ type: 'T', data: { i } });
    // As the older version made it, with 3 events acknowledged.
    const { jetstreamManager, AckPolicy, DeliverPolicy, nanos } = await loadNats();
    const nc = await connect({ servers: nats().url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.add(stream, {
        durable_name: 'query',
        ack_policy: AckPolicy.All,
        deliver_policy: DeliverPolicy.All,
        max_deliver: -1,
      });
      const old = await (await jsm.jetstream().consumers.get(stream, 'query')).fetch({ max_messages: 3 });
      for await (const msg of old) msg.ack();
      // The service replayed the stream up to 6: its view goes on from 7.
      const seen = recorder();
      transport.consume('query', seen.handle, 7);
      await waitFor(
        async () =>
          (await jsm.consumers.info(stream, 'query')).config.inactive_threshold ===
          nanos(LEGACY_DURABLE_IDLE_MS),
      );
      await transport.publish({ type: 'T', data: { i: 7 } });
      await waitFor(() => seen.seqs.length === 1);
      expect(seen.seqs).toEqual([7]);
      // The durable is untouched otherwise: an older process still reading it finds it where it was.
      expect((await jsm.consumers.info(stream, 'query')).ack_floor.stream_seq).toBe(3);

      // A second replica finds it limited already and says nothing.
      const second = transportOn(nats().url, stream, log);
      const seenBySecond = recorder();
      second.consume('query', seenBySecond.handle, 7);
      await waitFor(() => seenBySecond.seqs.length === 1);
      expect(
        lines.filter((line) => /durable consumer of an older version/.test(String(line.msg))),
      ).toHaveLength(1);
    } finally {
      await nc.close();
    }
  });

  it('skips a message that is not a JSON event, logging it, and goes on', async () => {
    const { log, lines } = capturedLog();
    const stream = uniqueStreamName('garbage');
    const transport = transportOn(nats().url, stream, log);
    await transport.publish({ type: 'T', data: { i: 1 } });
    // Published around the transport, as a learner with the nats CLI might.
    const nc = await connect({ servers: nats().url });
    await nc.request(`${stream}.events`, 'not json at all');
    await nc.request(`${stream}.events`, JSON.stringify({ type: 'PostCreated', data: { id: 'no title' } }));
    await nc.close();
    await transport.publish({ type: 'T', data: { i: 2 } });

    const handled: StoredEvent[] = [];
    transport.consume('query', async (events) => {
      handled.push(...events);
    });
    await waitFor(() => handled.length === 2);
    expect(handled.map((event) => event.seq)).toEqual([1, 4]);
    await waitFor(() => lines.filter((line) => /not a JSON event/.test(String(line.msg))).length === 2);
    expect(lines.find((line) => line.seq === 2)).toMatchObject({ level: 50, body: 'not json at all' });

    // A replay still counts it (no holes) and shows what it is, for the subscriber to skip.
    const { events: replay } = await transport.fetchAfter(0, 10);
    expect(replay.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
    expect(replay[1]).toMatchObject({ seq: 2, body: 'not json at all' });
    expect(replay[1]!.type).toBeUndefined();
  });

  it('stores a reaction once, ever: racing publishers, and one long after the duplicate window', async () => {
    const stream = uniqueStreamName('once');
    // The duplicate window alone would forget the id after a second.
    const { jetstreamManager, nanos } = await loadNats();
    const nc = await connect({ servers: nats().url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({
        name: stream,
        subjects: [`${stream}.events`, `${stream}.events.>`],
        duplicate_window: nanos(1000),
      });
    } finally {
      await nc.close();
    }
    const [a, b, c] = [
      transportOn(nats().url, stream),
      transportOn(nats().url, stream),
      transportOn(nats().url, stream),
    ];
    await a.publish({ type: 'CommentCreated', data: { id: 'c1' }, id: 'trigger' });
    const reaction = {
      type: 'CommentModerated',
      data: { id: 'c1', status: 'approved' },
      id: 'trigger/CommentModerated',
    };
    const raced = await Promise.all([
      a.publish(reaction, { once: true }),
      b.publish(reaction, { once: true }),
    ]);
    expect(raced.map((stored) => stored.seq)).toEqual([2, 2]);
    expect(raced.map((stored) => stored.duplicate).sort()).toEqual([false, true]);

    // Past the duplicate window: a plain publish of the same id would be stored again; `once` is not.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(await c.publish(reaction, { once: true })).toEqual({
      seq: 2,
      id: 'trigger/CommentModerated',
      duplicate: true,
    });
    const { events } = await c.fetchAfter(0, 10);
    expect(events.map((event) => event.id)).toEqual(['trigger', 'trigger/CommentModerated']);
    expect(events[1]).toMatchObject({ type: 'CommentModerated', data: { id: 'c1', status: 'approved' } });
    expect(c.onceSubject(reaction.id)).toMatch(new RegExp(`^${stream}\\.events\\.once\\.[0-9a-f]{64}$`));
  });

  it('adds the reactions subjects to a stream made with one subject, in place, keeping its events', async () => {
    const stream = uniqueStreamName('upgrade');
    const { jetstreamManager } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: nats().url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.streams.add({ name: stream, subjects: [`${stream}.events`] });
      await jsm.jetstream().publish(`${stream}.events`, JSON.stringify({ type: 'T', data: {}, id: 'old' }));
      const transport = transportOn(nats().url, stream);
      expect(await transport.publish({ type: 'R', data: {}, id: 'r' }, { once: true })).toMatchObject({
        seq: 2,
      });
      const info = await jsm.streams.info(stream);
      expect(info.config.subjects).toEqual([`${stream}.events`, `${stream}.events.>`]);
      expect((await transport.fetchAfter(0, 10)).events.map((event) => event.id)).toEqual(['old', 'r']);
    } finally {
      await nc.close();
    }
  });

  it('refuses NATS_REPLICAS above the nodes there are, saying so', async () => {
    const transport = new NatsTransport({ url: nats().url, stream: uniqueStreamName('r3'), replicas: 3 });
    transports.push(transport);
    const refused = await transport.publish({ type: 'T', data: {} }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(TransportError);
    expect((refused as Error).message).toMatch(/NATS_REPLICAS=3.*must not exceed the JetStream nodes/);
  });

  it('fails with a TransportError, fast, when NATS cannot be reached', async () => {
    // Fast: well before the transport's own timeout, a minute here.
    const transport = transportOn('nats://127.0.0.1:1', undefined, undefined, 60_000);
    const fast = <T>(promise: Promise<T>) => settlesBefore(promise, 20_000, 'a call to an unreachable NATS');
    await expect(fast(transport.publish({ type: 'T', data: {} }))).rejects.toBeInstanceOf(TransportError);
    await expect(fast(transport.fetchAfter(0, 1))).rejects.toThrow(
      /NATS at nats:\/\/127\.0\.0\.1:1: unreachable/,
    );
  });

  it('closes cleanly, deleting its consumer, and refuses calls once closed', async () => {
    const stream = uniqueStreamName('close');
    const transport = transportOn(nats().url, stream);
    const observer = transportOn(nats().url, stream);
    await transport.publish({ type: 'T', data: {} });
    transport.consume('posts', async () => undefined);
    await waitFor(async () => (await consumersOf(observer)).length === 1);
    await transport.close();
    await transport.close();
    await expect(transport.publish({ type: 'T', data: {} })).rejects.toThrow(/closed/);
    await waitFor(async () => (await consumersOf(observer)).length === 0);
  });
});

const own = natsAvailability({ needs: 'binary' });

describe.skipIf(own.skip)('NatsTransport while NATS crashes and comes back', () => {
  const server = useOwnNatsServer();

  it('fails fast while NATS is down, then reconnects by itself and has lost nothing', async () => {
    const transport = transportOn(server().url, undefined, undefined, 10_000);
    for (let i = 1; i <= 3; i++) await transport.publish({ type: 'T', data: { i }, id: `before-${i}` });
    const handled: number[] = [];
    transport.consume('query', async (events) => {
      handled.push(...events.map((event) => event.seq));
    });
    await waitFor(() => handled.length === 3);

    await server().kill();
    await waitFor(async () =>
      transport.publish({ type: 'T', data: {} }).then(
        () => false,
        (err) => err instanceof TransportError,
      ),
    );
    // Fast: well before the transport's own timeout, which a call waiting for NATS would reach.
    const fast = <T>(promise: Promise<T>) => settlesBefore(promise, 5000, 'a call while NATS is down');
    await expect(fast(transport.publish({ type: 'T', data: {}, id: 'during' }))).rejects.toThrow(
      /unreachable/,
    );
    await expect(fast(transport.fetchAfter(0, 10))).rejects.toBeInstanceOf(TransportError);

    await server().restart();
    // Back: the stream survived on disk, ids are still known, delivery resumes.
    await waitFor(
      async () =>
        transport.headSeq().then(
          () => true,
          () => false,
        ),
      { timeoutMs: 15_000 },
    );
    expect(await transport.publish({ type: 'T', data: { i: 1 }, id: 'before-1' })).toMatchObject({
      seq: 1,
      duplicate: true,
    });
    expect(await transport.publish({ type: 'T', data: { i: 4 } })).toMatchObject({ seq: 4 });
    await waitFor(() => handled.length === 4, { timeoutMs: 15_000 });
    expect(handled).toEqual([1, 2, 3, 4]);
  });
});

describe.skipIf(own.skip)('NatsTransport on a three-node JetStream cluster', () => {
  let cluster: NatsCluster;
  beforeAll(async () => {
    cluster = await startNatsCluster({ nodes: 3 });
  });
  afterAll(() => cluster?.stop());
  /** Brings back every node killed by a test, for the next one. */
  afterEach(async () => {
    const down = cluster.nodes.filter((node) => !node.running);
    await Promise.all(down.map((node) => node.restart()));
    if (down.length > 0) await cluster.ready();
  });
  const onCluster = (stream: string, replicas = 3) => {
    const transport = new NatsTransport({ url: cluster.url, stream, replicas, timeoutMs: 10_000 });
    transports.push(transport);
    return transport;
  };
  /** Publishes, trying again while the cluster elects a new leader for the stream. */
  const publishSoon = async (
    transport: NatsTransport,
    event: { type: string; data: Record<string, unknown>; id: string },
    options: PublishOptions = {},
  ) => {
    let stored: PublishResult | undefined;
    await waitFor(
      async () => (stored = await transport.publish(event, options).catch(() => undefined)) !== undefined,
      { timeoutMs: 60_000, message: `${event.id} was never stored` },
    );
    return stored!;
  };

  it('takes a NATS_URL list; NATS_REPLICAS=3 keeps the stream on three nodes and writable with one down', async () => {
    const stream = uniqueStreamName('r3');
    // Made with one replica, as a single-node setup did; updated in place when a client asks for three.
    const single = onCluster(stream, 1);
    await single.publish({ type: 'T', data: {}, id: 'on-one' });
    await single.close();
    const transport = onCluster(stream, 3);
    await transport.publish({ type: 'T', data: {}, id: 'on-three' });
    const { jsm } = await transport.client.jetStream();
    let info = await jsm.streams.info(stream);
    expect(info.config.num_replicas).toBe(3);
    // The two new replicas copy the stream before they count: "writable with one down" is said of a
    // stream whose replicas are current, which on a loaded machine takes a moment after the scale-up.
    await waitFor(
      async () => {
        info = await jsm.streams.info(stream);
        const replicas = info.cluster?.replicas ?? [];
        return replicas.length === 2 && replicas.every((replica) => replica.current);
      },
      { timeoutMs: 30_000, message: "the stream's two new replicas never became current" },
    );

    // The stream's leader goes: the two others elect one and take writes.
    const leader = cluster.nodes[Number(info.cluster!.leader!.slice(1))]!;
    await leader.kill();
    await publishSoon(transport, { type: 'T', data: {}, id: 'one-node-down' });
    // A read may meet a timeout while the cluster has not yet noticed the node is gone: read again.
    let ids: (string | undefined)[] = [];
    await waitFor(
      async () =>
        (ids = await transport.fetchAfter(0, 10).then(
          ({ events }) => events.map((event) => event.id),
          () => [],
        )).length > 0,
      { timeoutMs: 60_000 },
    );
    expect(ids).toEqual(['on-one', 'on-three', 'one-node-down']);
  }, 180_000);

  it("keeps a replica receiving, with no gap and nothing twice, when its consumer's node is SIGKILLed", async () => {
    const stream = uniqueStreamName('node-dies');
    const publisher = onCluster(stream);
    const replica = onCluster(stream);
    for (let i = 1; i <= 5; i++) await publisher.publish({ type: 'T', data: { i }, id: `e${i}` });
    const { seqs, handle } = recorder();
    replica.consume('query', handle);
    await waitFor(() => seqs.length === 5);
    const [consumer] = await consumersOf(replica);
    const node = cluster.nodes[Number(consumer!.leader!.slice(1))]!;
    await node.kill();
    for (let i = 6; i <= 15; i++) await publishSoon(publisher, { type: 'T', data: { i }, id: `e${i}` });
    await waitFor(() => seqs.length >= 15, { timeoutMs: 60_000, message: 'the replica stopped receiving' });
    expect(seqs).toEqual(range(1, 15));
    // Made again on a node that runs.
    const [now] = (await consumersOf(replica)).filter((c) => c.name !== consumer!.name);
    expect(now?.leader).not.toBe(consumer!.leader);
  }, 180_000);

  it('stores a reaction once when replicas on different nodes race it', async () => {
    const stream = uniqueStreamName('race');
    const replicas = [onCluster(stream), onCluster(stream), onCluster(stream)];
    const reaction = { type: 'CommentModerated', data: { id: 'c' }, id: 'c-created/CommentModerated' };
    // Tried again while a loaded cluster settles: a retry may meet its own first try, stored.
    const stored = await Promise.all(
      replicas.map((replica) => publishSoon(replica, reaction, { once: true })),
    );
    expect(new Set(stored.map((result) => result.seq))).toEqual(new Set([1]));
    expect(stored.filter((result) => !result.duplicate).length).toBeLessThanOrEqual(1);
    expect((await replicas[0]!.fetchAfter(0, 10)).events).toHaveLength(1);
  });
});
