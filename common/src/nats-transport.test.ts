import { Writable } from 'node:stream';
import { connect } from '@nats-io/transport-node';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { uniqueStreamName } from '@blog/common/nats-server';
import { natsAvailability } from '@blog/common/testing';
import { useNats, useOwnNatsServer } from '../../test/support/nats.js';
import { settlesBefore, waitFor } from '../../test/support/wait-for.js';
import type { StoredEvent } from './events.js';
import { PAGE_MAX_BYTES } from './limits.js';
import { NatsTransport } from './nats-transport.js';
import { TransportError } from './transport.js';

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
function capturedLog() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { log: pino({ level: 'warn' }, sink), lines };
}

/** The stream's durable consumers: acknowledged seq (`cursor`), unacknowledged events, redeliveries. */
async function durableConsumers(transport: NatsTransport) {
  const { jsm } = await transport.client.jetStream();
  const found = [];
  for await (const info of jsm.consumers.list(transport.stream)) {
    if (!info.config.durable_name) continue;
    const { num_pending: pending, num_ack_pending: ackPending } = info;
    found.push({
      name: info.name,
      cursor: info.ack_floor.stream_seq,
      lag: pending + ackPending,
      ackPending,
      failures: info.num_redelivered,
    });
  }
  return found;
}

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
    const pages: StoredEvent[][] = [];
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

  it('consume delivers every event in order once acknowledged, and resumes after the last ack', async () => {
    const stream = uniqueStreamName('consume');
    const transport = transportOn(nats().url, stream);
    for (let i = 1; i <= 5; i++) await transport.publish({ type: 'T', data: { i } });
    const seen: number[] = [];
    transport.consume('query', async (events) => {
      seen.push(...events.map((event) => event.seq));
    });
    await waitFor(() => seen.length === 5);
    await transport.publish({ type: 'T', data: { i: 6 } });
    await waitFor(() => seen.length === 6);
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    await waitFor(async () => (await durableConsumers(transport))[0]?.cursor === 6);
    expect(await durableConsumers(transport)).toEqual([
      { name: 'query', cursor: 6, lag: 0, ackPending: 0, failures: 0 },
    ]);
    await transport.close();

    // Another process, the same durable consumer: only what came since.
    const again = transportOn(nats().url, stream);
    await again.publish({ type: 'T', data: { i: 7 } });
    const later: number[] = [];
    again.consume('query', async (events) => {
      later.push(...events.map((event) => event.seq));
    });
    await waitFor(() => later.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(later).toEqual([7]);
  });

  it('delivers again an event whose handler failed, until it succeeds', async () => {
    const { log, lines } = capturedLog();
    const transport = transportOn(nats().url, uniqueStreamName('redeliver'), log);
    for (let i = 1; i <= 4; i++) await transport.publish({ type: 'T', data: { i } });
    const attempts = new Map<number, number>();
    const handled: number[] = [];
    // Events come in batches: a batch holding seq 2 fails (twice), and nothing of it counts.
    transport.consume('moderation', async (events) => {
      for (const { seq } of events) attempts.set(seq, (attempts.get(seq) ?? 0) + 1);
      if (events.some(({ seq }) => seq === 2) && attempts.get(2)! < 3)
        throw new Error('the database is busy');
      handled.push(...events.map(({ seq }) => seq));
    });
    await waitFor(() => handled.length === 4);
    expect(attempts.get(2)).toBe(3);
    expect([...handled].sort()).toEqual([1, 2, 3, 4]);
    expect(lines.filter((line) => line.msg === 'events not handled, delivered again later')).toHaveLength(2);
    await waitFor(async () => (await durableConsumers(transport))[0]?.lag === 0);
  });

  it('hands the messages that came meanwhile to one handle call, in order, acknowledged by one ack', async () => {
    const transport = transportOn(nats().url, uniqueStreamName('batch'));
    await Promise.all(Array.from({ length: 150 }, (_, i) => transport.publish({ type: 'T', data: { i } })));
    const calls: number[][] = [];
    // The first call is held until NATS has sent every message to this client: they wait in its queue.
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
    transport.consume('query', async (events) => {
      calls.push(events.map((event) => event.seq));
      if (calls.length === 1) await firstHeld;
    });
    await waitFor(async () => (await durableConsumers(transport))[0]?.ackPending === 150);
    releaseFirst();
    await waitFor(() => calls.flat().length === 150);
    expect(calls.flat()).toEqual(Array.from({ length: 150 }, (_, i) => i + 1));
    // What came while the first call ran is handed over together, not one message per call (the last few
    // may still have been on the wire when the first call ended).
    expect(calls.length).toBeLessThanOrEqual(3);
    await waitFor(async () => (await durableConsumers(transport))[0]?.cursor === 150);
    expect((await durableConsumers(transport))[0]).toMatchObject({ lag: 0, ackPending: 0 });

    // One event alone is handed over, never held back to fill a batch: nothing else will come.
    const before = calls.length;
    await transport.publish({ type: 'T', data: { i: 150 } });
    await waitFor(() => calls.length === before + 1);
    expect(calls[before]).toEqual([151]);
  });

  it('delivers a failed batch again whole, and acknowledges nothing of it meanwhile', async () => {
    const { log } = capturedLog();
    const transport = transportOn(nats().url, uniqueStreamName('batch-fail'), log);
    await Promise.all(Array.from({ length: 20 }, (_, i) => transport.publish({ type: 'T', data: { i } })));
    const failed: number[][] = [];
    const handled: number[][] = [];
    let fail = true;
    transport.consume('query', async (events) => {
      if (!fail) return void handled.push(events.map((event) => event.seq));
      failed.push(events.map((event) => event.seq));
      throw new Error('the database is busy');
    });
    await waitFor(() => failed.length === 1);
    expect(failed[0]).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    const status = (await durableConsumers(transport))[0]!;
    expect(status.cursor).toBe(0);
    expect(status.lag).toBe(20);
    fail = false;
    await waitFor(async () => (await durableConsumers(transport))[0]?.cursor === 20);
    // Delivered again, every event of it, in order (in one batch or several, as they come back).
    expect(handled.flat()).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
    expect((await durableConsumers(transport))[0]).toMatchObject({ lag: 0, ackPending: 0 });
  });

  it('starts a new consumer at the seq given, and an existing one where it was', async () => {
    const stream = uniqueStreamName('start-seq');
    const transport = transportOn(nats().url, stream);
    for (let i = 1; i <= 10; i++) await transport.publish({ type: 'T', data: { i } });
    const seen: number[] = [];
    transport.consume('query', async (events) => void seen.push(...events.map((event) => event.seq)), 8);
    await waitFor(() => seen.length === 3);
    await waitFor(async () => (await durableConsumers(transport))[0]?.cursor === 10);
    expect(seen).toEqual([8, 9, 10]);
    await transport.close();

    // The consumer exists: the start seq given now changes nothing.
    const again = transportOn(nats().url, stream);
    await again.publish({ type: 'T', data: { i: 11 } });
    const later: number[] = [];
    again.consume('query', async (events) => void later.push(...events.map((event) => event.seq)), 2);
    await waitFor(() => later.length === 1);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(later).toEqual([11]);
  });

  it('makes a consumer of an earlier version (explicit acks) again, acknowledging all, from the seq given', async () => {
    const stream = uniqueStreamName('upgrade');
    const transport = transportOn(nats().url, stream);
    for (let i = 1; i <= 6; i++) await transport.publish({ type: 'T', data: { i } });
    // As the earlier version made it, with 3 events acknowledged.
    const { jetstreamManager, AckPolicy, DeliverPolicy } = await import('@nats-io/jetstream');
    const nc = await connect({ servers: nats().url });
    try {
      const jsm = await jetstreamManager(nc);
      await jsm.consumers.add(stream, {
        durable_name: 'query',
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        max_deliver: -1,
      });
      const old = await (await jsm.jetstream().consumers.get(stream, 'query')).fetch({ max_messages: 3 });
      for await (const msg of old) msg.ack();
      const seen: number[] = [];
      // The service replayed the stream up to 6: its consumer starts at 7.
      transport.consume('query', async (events) => void seen.push(...events.map((event) => event.seq)), 7);
      await waitFor(
        async () => (await jsm.consumers.info(stream, 'query')).config.ack_policy === AckPolicy.All,
      );
      await transport.publish({ type: 'T', data: { i: 7 } });
      await waitFor(() => seen.length === 1);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(seen).toEqual([7]);
    } finally {
      await nc.close();
    }
  });

  it('terminates a message that is not a JSON event, logging it, and goes on', async () => {
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
    await waitFor(async () => (await durableConsumers(transport))[0]?.lag === 0);

    // A replay still counts it (no holes) and shows what it is, for the subscriber to skip.
    const { events: replay } = await transport.fetchAfter(0, 10);
    expect(replay.map((event) => event.seq)).toEqual([1, 2, 3, 4]);
    expect(replay[1]).toMatchObject({ seq: 2, body: 'not json at all' });
    expect(replay[1]!.type).toBeUndefined();
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

  it('closes cleanly, consumers and all, and refuses calls once closed', async () => {
    const transport = transportOn(nats().url);
    await transport.publish({ type: 'T', data: {} });
    transport.consume('posts', async () => undefined);
    await waitFor(async () => (await durableConsumers(transport)).length === 1);
    await transport.close();
    await transport.close();
    await expect(transport.publish({ type: 'T', data: {} })).rejects.toThrow(/closed/);
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
