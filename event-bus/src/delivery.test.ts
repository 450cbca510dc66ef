import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { EVENT_MAX_BYTES, sleep } from '@blog/common';
import { afterEach, describe, expect, it } from 'vitest';
import { eventOfDeliveredSize } from '../../test/support/bus-routes.js';
import { settlesBefore } from '../../test/support/wait-for.js';
import { createBus } from './app.js';
import { BATCH_MAX_EVENTS, DELIVERY_TIMEOUT_MS, TELL_PASSES_AFTER_MS } from './delivery.js';

// The bus for real: started on a free port with a temporary DATA_DIR, delivering over HTTP to small
// node:http subscribers written here. Nothing of the bus is mocked.

interface Answer {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
}
type Delivered = Record<string, unknown> & { seq: number; id: string; type: string };
type Handler = (
  body: Delivered | Delivered[],
  headers: http.IncomingHttpHeaders,
) => Answer | Promise<Answer> | void;

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A subscriber: records every POST body, answers what `handler` says (default: 200 {}, no headers). */
async function subscriber(handler: Handler = () => ({}), port = 0) {
  const posts: Array<Delivered | Delivered[]> = [];
  const server = http.createServer((req, res) => {
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    const reply = async () => {
      const body = JSON.parse(raw) as Delivered | Delivered[];
      posts.push(body);
      const answer = (await handler(body, req.headers)) ?? {};
      if (res.destroyed) return;
      res.writeHead(answer.status ?? 200, { 'Content-Type': 'application/json', ...answer.headers });
      res.end(JSON.stringify(answer.body ?? {}));
    };
    // A handler that throws fails this one delivery (the bus sees the socket close), not the test run.
    req.on('end', () => {
      reply().catch((err: unknown) => res.destroy(err as Error));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  cleanups.push(close);
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
    posts,
    /** Every event received, batches flattened, in the order received. */
    events: () => posts.flatMap((body) => (Array.isArray(body) ? body : [body])),
    close,
  };
}

/** The answer of a subscriber that takes batches (what common/src/service.ts answers). */
const batchAnswer = (body: Delivered | Delivered[]): Answer => {
  const events = Array.isArray(body) ? body : [body];
  return { headers: { 'X-Events-Batch': 'accept', 'X-Events-Acked': String(events.at(-1)!.seq) } };
};

/** The answer headers of a subscriber that acts on `Wanted` only and lets the bus skip the other types. */
const skippingAnswerHeaders = (body: Delivered | Delivered[]) => ({
  ...batchAnswer(body).headers,
  'X-Events-Types': 'Wanted',
  'X-Events-Others': 'skip',
});

async function startBus(
  subscribers: Record<string, string>,
  options: { dir?: string; retryMaxMs?: number; deferMaxMs?: number } = {},
) {
  const dir = options.dir ?? (await mkdtemp(path.join(os.tmpdir(), 'event-bus-delivery-')));
  const bus = createBus({
    env: {
      PORT: '0',
      DATA_DIR: dir,
      LOG_LEVEL: 'silent',
      RETRY_MAX_MS: String(options.retryMaxMs ?? 20),
      SUBSCRIBERS: Object.entries(subscribers)
        .map(([name, url]) => `${name}=${url}`)
        .join(','),
    },
    deferMaxMs: options.deferMaxMs,
  });
  const server = await bus.start();
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await bus.stop();
  };
  cleanups.push(async () => {
    await stop();
    if (!options.dir) await rm(dir, { recursive: true, force: true });
  });
  const publish = async (event: object) => {
    const res = await fetch(`${url}/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(event),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as { seq: number; id: string };
  };
  const get = async (route: string) => (await fetch(`${url}${route}`)).json() as Promise<unknown>;
  const metrics = async () => (await fetch(`${url}/metrics`)).text();
  return { bus, dir, url, publish, get, metrics, stop };
}

/**
 * A bus whose one subscriber acts on `Wanted` and skips the other types, once it has taken the first
 * `Wanted` (seq 1) and said so. `onPost` sees each POST; what it answers is the answer, else the skipping one.
 */
async function busWithSkippingSubscriber(
  onPost: (...args: Parameters<Handler>) => Answer | undefined = () => undefined,
  options: Parameters<typeof startBus>[1] = {},
) {
  const sub = await subscriber(
    (body, request) => onPost(body, request) ?? { headers: skippingAnswerHeaders(body) },
  );
  const bus = await startBus({ sub: sub.url }, options);
  const loop = bus.bus.deliveries.loops[0]!;
  await bus.publish({ type: 'Wanted', data: { i: 1 } });
  await waitFor(() => loop.cursor === 1);
  return { sub, bus, loop };
}

async function waitFor(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(5);
  }
}

const seqsOf = (events: Delivered[]) => events.map((e) => e.seq);
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('delivery', () => {
  it('delivers every event to every subscriber, in order, as single plain events (course-original style)', async () => {
    const posts = await subscriber();
    const query = await subscriber();
    const bus = await startBus({ posts: posts.url, query: query.url });
    const sent = [];
    for (let i = 1; i <= 5; i++)
      sent.push(await bus.publish({ type: 'PostCreated', data: { id: `p${i}`, title: `t${i}` } }));
    await waitFor(() => posts.posts.length === 5 && query.posts.length === 5);
    for (const sub of [posts, query]) {
      expect(sub.posts.every((body) => !Array.isArray(body))).toBe(true);
      expect(seqsOf(sub.events())).toEqual([1, 2, 3, 4, 5]);
      expect(sub.events()[0]).toEqual({
        type: 'PostCreated',
        data: { id: 'p1', title: 't1' },
        seq: 1,
        id: sent[0]!.id,
        time: expect.any(String),
      });
    }
    expect(await bus.get('/subscribers')).toMatchObject([
      { name: 'posts', cursor: 5, lag: 0, failures: 0, batches: false },
      { name: 'query', cursor: 5, lag: 0, failures: 0, batches: false },
    ]);
  });

  it('delivers right after a publish, with no polling delay', async () => {
    let delivered = () => undefined as void;
    const sub = await subscriber(() => delivered());
    const bus = await startBus({ sub: sub.url });
    const oneHop: number[] = [];
    const publishToDelivery: number[] = [];
    for (let i = 0; i < 25; i++) {
      // One plain HTTP round trip, measured at the same moment on the same machine, gives the scale: a test
      // machine busy with other work slows both alike.
      let started = performance.now();
      await fetch(`${bus.url}/healthz`);
      const hop = performance.now() - started;

      const arrived = new Promise<void>((resolve) => (delivered = resolve));
      started = performance.now();
      await bus.publish({ type: 'T', data: { i } });
      await arrived;
      // The first rounds warm up connections and the JIT.
      if (i >= 5) {
        oneHop.push(hop);
        publishToDelivery.push(performance.now() - started);
      }
    }
    // Publish then delivery is two hops; a delivery loop that polled instead of being woken would add half
    // its polling interval to the median, far over this bound.
    expect(median(publishToDelivery)).toBeLessThan(3 * median(oneHop) + 10);
    expect(seqsOf(sub.events())).toEqual(range(1, 25));
  });

  it('retries with backoff while a subscriber answers 503, then delivers everything in order', async () => {
    let unavailable = 4;
    const sub = await subscriber(() => (unavailable-- > 0 ? { status: 503 } : {}));
    const bus = await startBus({ sub: sub.url });
    await bus.publish({ type: 'T', data: { n: 1 } });
    await bus.publish({ type: 'T', data: { n: 2 } });
    await waitFor(() => sub.posts.length >= 6);
    // The first event was tried until it got through, and only then the second.
    expect(seqsOf(sub.events())).toEqual([1, 1, 1, 1, 1, 2]);
    expect(await bus.metrics()).toMatch(
      /eventbus_deliveries_total\{subscriber="sub",outcome="failed",service="event-bus"\} 4/,
    );
    expect(await bus.get('/subscribers')).toMatchObject([
      { cursor: 2, lag: 0, failures: 0, lastError: null },
    ]);
  });

  it('retries while a subscriber is down, and delivers once it comes up', async () => {
    const probe = await subscriber();
    const port = Number(new URL(probe.url).port);
    await probe.close(); // now nothing listens on that port
    const bus = await startBus({ sub: probe.url });
    await bus.publish({ type: 'T', data: { n: 1 } });
    await bus.publish({ type: 'T', data: { n: 2 } });
    const loop = bus.bus.deliveries.loops[0]!;
    await waitFor(() => loop.failures >= 3);
    expect(loop.lastError).toMatch(/ECONNREFUSED/);
    expect(loop.cursor).toBe(0);

    const sub = await subscriber(undefined, port);
    await waitFor(() => sub.posts.length === 2);
    expect(seqsOf(sub.events())).toEqual([1, 2]);
  });

  it('dead-letters an event rejected with a 4xx, moves on, lists it and counts it', async () => {
    const sub = await subscriber((body) =>
      (body as Delivered).type === 'Bad' ? { status: 400, body: { errors: [{ message: 'no thanks' }] } } : {},
    );
    const bus = await startBus({ sub: sub.url });
    await bus.publish({ type: 'Good', data: {} });
    const bad = await bus.publish({ type: 'Bad', data: {} });
    await bus.publish({ type: 'Good', data: {} });
    await waitFor(() => sub.posts.length === 3);
    await waitFor(() => bus.bus.deliveries.loops[0]!.cursor === 3);

    expect(await bus.get('/dead-letters?subscriber=sub')).toEqual([
      {
        subscriber: 'sub',
        seq: 2,
        id: bad.id,
        type: 'Bad',
        status: 400,
        response: '{"errors":[{"message":"no thanks"}]}',
        time: expect.any(String),
        event: { seq: 2, id: bad.id, type: 'Bad', data: {}, time: expect.any(String) },
      },
    ]);
    expect(await bus.get('/subscribers')).toMatchObject([{ cursor: 3, deadLetters: 1 }]);
    const metrics = await bus.metrics();
    expect(metrics).toMatch(/eventbus_dead_letters_total\{subscriber="sub",service="event-bus"\} 1/);
    expect(metrics).toMatch(
      /eventbus_deliveries_total\{subscriber="sub",outcome="delivered",service="event-bus"\} 2/,
    );
  });

  it('keeps the cursor across a restart: acknowledged events are not delivered again', async () => {
    let up = true;
    const sub = await subscriber(() => (up ? {} : { status: 503 }));
    const first = await startBus({ sub: sub.url }, { retryMaxMs: 5 });
    const dir = first.dir;
    for (let i = 1; i <= 3; i++) await first.publish({ type: 'T', data: { i } });
    await waitFor(() => first.bus.deliveries.loops[0]!.cursor === 3);
    // Stored while the subscriber is down: not acknowledged, so owed after the restart.
    up = false;
    await first.publish({ type: 'T', data: { i: 4 } });
    await waitFor(() => sub.posts.length >= 5);
    await first.stop();

    up = true;
    const restartedAt = sub.posts.length;
    const second = await startBus({ sub: sub.url }, { dir });
    await waitFor(() => second.bus.deliveries.loops[0]!.cursor === 4);
    await second.publish({ type: 'T', data: { i: 5 } });
    await waitFor(() => second.bus.deliveries.loops[0]!.cursor === 5);
    // 1-3 were acknowledged: never again. 4 was not, so it comes again (at-least-once), maybe twice if the
    // POST the first bus aborted on stopping still reached the subscriber.
    expect(new Set(seqsOf(sub.events().slice(restartedAt)))).toEqual(new Set([4, 5]));
  });

  it('switches to batches when the subscriber accepts them', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const sub = await subscriber(async (body) => {
      // Hold the first answer while more events pile up, so the next POSTs carry real batches.
      if (!Array.isArray(body) && body.seq === 1) await held;
      return batchAnswer(body);
    });
    const bus = await startBus({ sub: sub.url });
    const total = 1 + BATCH_MAX_EVENTS + 50;
    await bus.publish({ type: 'T', data: { i: 1 } });
    await waitFor(() => sub.posts.length === 1);
    // Stored directly (quicker than 250 HTTP publishes; the route has its own tests): the loop is busy
    // with seq 1 and reads the log again once that POST is answered.
    for (const i of range(2, total)) bus.bus.store.append({ type: 'T', data: { i } });
    release();
    await waitFor(() => sub.events().length === total);

    expect(Array.isArray(sub.posts[0])).toBe(false);
    expect(sub.posts.slice(1).map((body) => (Array.isArray(body) ? body.length : 'single'))).toEqual([
      BATCH_MAX_EVENTS,
      50,
    ]);
    expect(seqsOf(sub.events())).toEqual(range(1, total));
    expect(await bus.get('/subscribers')).toMatchObject([{ cursor: total, batches: true }]);
  });

  it('stores the reactions a subscriber sends back in its answer, once, and delivers them', async () => {
    const replyHeaders: unknown[] = [];
    const reaction = { id: 'r-1/Noticed', type: 'Noticed', data: { of: 1 } };
    const sub = await subscriber((body, headers) => {
      replyHeaders.push(headers['x-events-reply']);
      const events = Array.isArray(body) ? body : [body];
      // Answers the trigger with the reaction, and the next event with it again (as if still owed).
      if (events.every((e) => e.type !== 'Noticed')) {
        return { headers: { 'X-Events-Reactions': '1' }, body: { events: [reaction] } };
      }
      return {};
    });
    const bus = await startBus({ sub: sub.url });
    await bus.publish({ type: 'T', data: { i: 1 }, id: 'r-1' });
    await waitFor(() => sub.events().some((e) => e.type === 'Noticed'));
    await bus.publish({ type: 'T', data: { i: 2 } });
    await waitFor(() => sub.events().length === 3);

    const log = (await bus.get('/events')) as Delivered[];
    expect(log.map((e) => [e.seq, e.type, e.id])).toEqual([
      [1, 'T', 'r-1'],
      [2, 'Noticed', 'r-1/Noticed'],
      [3, 'T', log[2]!.id],
    ]);
    expect(sub.events().map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(new Set(replyHeaders)).toEqual(new Set(['accept']));
    expect(await bus.metrics()).toMatch(
      /eventbus_published_total\{result="duplicate",service="event-bus"\} 1/,
    );
  });

  it('holds back the types a subscriber does not act on, and sends them with the next one it does', async () => {
    const cursors: unknown[] = [];
    const sub = await subscriber((body, headers) => {
      cursors.push(headers['x-events-cursor']);
      return { ...batchAnswer(body), headers: { ...batchAnswer(body).headers, 'X-Events-Types': 'Wanted' } };
    });
    // Long enough that only the next wanted event can release what waits.
    const bus = await startBus({ sub: sub.url }, { deferMaxMs: 60_000 });
    await bus.publish({ type: 'Wanted', data: { i: 1 } });
    await waitFor(() => sub.posts.length === 1);
    await bus.publish({ type: 'Other', data: { i: 2 } });
    await bus.publish({ type: 'Other', data: { i: 3 } });
    await sleep(200);
    expect(sub.posts).toHaveLength(1);
    expect(await bus.get('/subscribers')).toMatchObject([{ cursor: 1, lag: 2, types: ['Wanted'] }]);

    await bus.publish({ type: 'Wanted', data: { i: 4 } });
    await waitFor(() => sub.posts.length === 2);
    const second = sub.posts[1] as Delivered[];
    expect(second.map((e) => [e.seq, e.type])).toEqual([
      [2, 'Other'],
      [3, 'Other'],
      [4, 'Wanted'],
    ]);
    // Each POST says up to where the bus had everything acknowledged (and the answers' reactions stored).
    expect(cursors).toEqual(['0', '1']);
  });

  it('sends what it held back once it has waited long enough, even with nothing wanted after it', async () => {
    const sub = await subscriber((body) => ({
      headers: { ...batchAnswer(body).headers, 'X-Events-Types': 'Wanted' },
    }));
    const bus = await startBus({ sub: sub.url }, { deferMaxMs: 30 });
    await bus.publish({ type: 'Wanted', data: { i: 1 } });
    await waitFor(() => sub.posts.length === 1);
    for (const i of range(2, 6)) await bus.publish({ type: 'Other', data: { i } });
    await waitFor(() => sub.events().length === 6);
    expect(seqsOf(sub.events())).toEqual(range(1, 6));
    // Held back together: fewer POSTs than events (each publish above takes a round trip of its own).
    expect(sub.posts.length).toBeLessThan(6);
  });

  it('holds nothing back from a subscriber that does not list its types (a course-original one)', async () => {
    const sub = await subscriber(batchAnswer);
    const bus = await startBus({ sub: sub.url }, { deferMaxMs: 60_000 });
    await bus.publish({ type: 'Wanted', data: { i: 1 } });
    await bus.publish({ type: 'Other', data: { i: 2 } });
    await waitFor(() => sub.events().length === 2);
    expect(await bus.get('/subscribers')).toMatchObject([{ cursor: 2, types: null }]);
  });

  it('sends a subscriber that skips the other types only those it acts on, and tells it what it passed over', async () => {
    const headers: Array<[string | undefined, string | undefined]> = [];
    // Given a subscriber that said, in its first answer, which types it acts on and that it skips the others
    const { sub, bus, loop } = await busWithSkippingSubscriber(
      (_body, request) => {
        headers.push([
          request['x-events-cursor'] as string | undefined,
          request['x-events-through'] as string | undefined,
        ]);
        return undefined;
      },
      { deferMaxMs: 60_000 },
    );

    // When only events of other types follow
    await bus.publish({ type: 'Other', data: { i: 2 } });
    await bus.publish({ type: 'Other', data: { i: 3 } });
    // Then the cursor moves past them without a POST
    await waitFor(() => loop.cursor === 3);
    expect(sub.posts).toHaveLength(1);
    expect(await bus.get('/subscribers')).toMatchObject([
      { cursor: 3, lag: 0, types: ['Wanted'], others: 'skip' },
    ]);
    expect(await bus.metrics()).toMatch(
      /eventbus_cursor_passes_total\{subscriber="sub",service="event-bus"\} [1-9]/,
    );

    // And the next event it acts on comes alone, saying that every seq since its last delivery up to
    // there that is not in the body was passed over
    await bus.publish({ type: 'Wanted', data: { i: 4 } });
    await bus.publish({ type: 'Other', data: { i: 5 } });
    await waitFor(() => loop.cursor === 5 && sub.posts.length === 2);
    expect(sub.posts.map((body) => seqsOf(Array.isArray(body) ? body : [body]))).toEqual([[1], [4]]);
    expect(headers[1]).toEqual(['1', expect.stringMatching(/^[45]$/)]);
  });

  it('stores the cursor the subscriber knows, not a pass it has not been told of yet', async () => {
    const sub = await subscriber((body) => ({
      headers: skippingAnswerHeaders(body),
    }));
    // Long enough that the bus does not tell it of the pass meanwhile.
    const first = await startBus({ sub: sub.url }, { deferMaxMs: 60_000 });
    await first.publish({ type: 'Wanted', data: { i: 1 } });
    await waitFor(() => first.bus.deliveries.loops[0]!.cursor === 1);
    await first.publish({ type: 'Other', data: { i: 2 } });
    await waitFor(() => first.bus.deliveries.loops[0]!.cursor === 2);
    await first.stop();

    // The pass over seq 2 was never told to the subscriber: what SQLite keeps is the cursor it knows.
    const second = await startBus({ sub: sub.url }, { dir: first.dir });
    expect(second.bus.deliveries.loops[0]!.cursor).toBe(1);
    await second.publish({ type: 'Wanted', data: { i: 3 } });
    await waitFor(() => second.bus.deliveries.loops[0]!.cursor === 3);
    expect(new Set(seqsOf(sub.events()))).toContain(3);
  });

  it('tells a subscriber of the events it passed over once the log is quiet, with the last of them', async () => {
    const headers: Array<[unknown, unknown]> = [];
    const { sub, bus } = await busWithSkippingSubscriber((_body, request) => {
      headers.push([request['x-events-cursor'], request['x-events-through']]);
      return undefined;
    });
    // Stored in one go (as a publish of an array is), so they are passed over together.
    bus.bus.store.appendMany(range(2, 4).map((i) => ({ type: 'Other', data: { i } })));
    bus.bus.deliveries.wakeAll();
    await waitFor(() => bus.bus.store.cursor('sub') === 4, 3 * TELL_PASSES_AFTER_MS);
    expect(sub.posts).toHaveLength(2);
    // One POST for the quiet spell: the last event passed over, covering everything since seq 1.
    expect(seqsOf(sub.events()).at(-1)).toBe(4);
    expect(headers.at(-1)).toEqual(['1', '4']);
  });

  it('tells a subscriber that skips other types, after a dead letter, the dead-lettered seq as its cursor', async () => {
    const cursors: unknown[] = [];
    const { bus, loop } = await busWithSkippingSubscriber((body, request) => {
      cursors.push(request['x-events-cursor']);
      const events = Array.isArray(body) ? body : [body];
      if (events.some((e) => (e.data as { bad?: boolean }).bad))
        return { status: 422, body: { errors: [{ message: 'bad' }] } };
      return undefined;
    });
    await bus.publish({ type: 'Other', data: { i: 2 } });
    await bus.publish({ type: 'Wanted', data: { i: 3, bad: true } });
    await waitFor(() => loop.cursor === 3);
    await bus.publish({ type: 'Wanted', data: { i: 4 } });
    await waitFor(() => loop.cursor === 4);
    // Refused as a batch, refused alone (dead-lettered), then seq 4 with the dead-lettered seq as cursor:
    // the subscriber reads what it lacks below it from the log.
    expect(await bus.get('/dead-letters')).toMatchObject([{ seq: 3, status: 422 }]);
    expect(cursors.at(-1)).toBe('3');
  });

  it('stores the valid reactions of an answer that also carries a malformed one', async () => {
    const sub = await subscriber((body) => {
      const events = Array.isArray(body) ? body : [body];
      if (events[0]!.seq !== 1) return {};
      const reactions = [
        { id: 'ok-1', type: 'Noticed', data: { n: 1 } },
        { id: 'bad', data: { no: 'type' } },
        { id: 'ok-2', type: 'Noticed', data: { n: 2 } },
      ];
      return { headers: { 'X-Events-Reactions': '3' }, body: { events: reactions } };
    });
    const bus = await startBus({ sub: sub.url });
    await bus.publish({ type: 'T', data: { i: 1 } });
    await waitFor(() => sub.events().length === 3);
    expect(((await bus.get('/events')) as Delivered[]).map((e) => e.id).slice(1)).toEqual(['ok-1', 'ok-2']);
    expect(await bus.metrics()).toMatch(
      /eventbus_deliveries_total\{subscriber="sub",outcome="reactions-rejected",service="event-bus"\} 1/,
    );
  });

  it('refuses malformed reactions in an answer (counted, nothing stored) and goes on delivering', async () => {
    const sub = await subscriber((body) => {
      const events = Array.isArray(body) ? body : [body];
      if (events[0]!.seq === 1) {
        return { headers: { 'X-Events-Reactions': '1' }, body: { events: [{ data: { no: 'type' } }] } };
      }
      return {};
    });
    const bus = await startBus({ sub: sub.url });
    await bus.publish({ type: 'T', data: { i: 1 } });
    await bus.publish({ type: 'T', data: { i: 2 } });
    await waitFor(() => sub.events().length === 2);
    expect(((await bus.get('/events')) as Delivered[]).map((e) => e.type)).toEqual(['T', 'T']);
    expect(await bus.metrics()).toMatch(
      /eventbus_deliveries_total\{subscriber="sub",outcome="reactions-rejected",service="event-bus"\} 1/,
    );
    expect(await bus.get('/subscribers')).toMatchObject([{ cursor: 2 }]);
  });

  it('refuses a reaction larger than a subscriber takes (counted), and stores the others of the answer', async () => {
    const sub = await subscriber((body) => {
      const events = Array.isArray(body) ? body : [body];
      if (events[0]!.seq !== 1) return {};
      const reactions = [
        eventOfDeliveredSize(EVENT_MAX_BYTES + 1, 'too-large'),
        { id: 'fits', type: 'Noticed', data: { n: 1 } },
      ];
      return { headers: { 'X-Events-Reactions': '2' }, body: { events: reactions } };
    });
    const bus = await startBus({ sub: sub.url });
    await bus.publish({ type: 'T', data: { i: 1 } });
    await waitFor(() => sub.events().length === 2);
    expect(((await bus.get('/events')) as Delivered[]).map((e) => e.id).slice(1)).toEqual(['fits']);
    expect(await bus.metrics()).toMatch(
      /eventbus_deliveries_total\{subscriber="sub",outcome="reactions-rejected",service="event-bus"\} 1/,
    );
  });

  it('goes back to single events when batches are no longer acknowledged, losing nothing', async () => {
    // Takes batches at first; after its second POST a course-original service answers at this URL:
    // 200 {} with no headers, and an array means nothing to it.
    const applied: number[] = [];
    let courseOriginal = false;
    const sub = await subscriber((body) => {
      if (courseOriginal) {
        if (!Array.isArray(body)) applied.push(body.seq);
        return {};
      }
      applied.push(...(Array.isArray(body) ? body : [body]).map((e) => e.seq));
      if (sub.posts.length === 2) courseOriginal = true;
      return batchAnswer(body);
    });
    const bus = await startBus({ sub: sub.url });
    await bus.publish({ type: 'T', data: { i: 1 } });
    await waitFor(() => sub.posts.length === 1);
    await Promise.all(range(2, 5).map((i) => bus.publish({ type: 'T', data: { i } })));
    await waitFor(() => applied.length >= 5);
    await Promise.all(range(6, 10).map((i) => bus.publish({ type: 'T', data: { i } })));
    await waitFor(() => bus.bus.deliveries.loops[0]!.cursor === 10);

    expect([...new Set(applied)].sort((a, b) => a - b)).toEqual(range(1, 10));
    // The one unacknowledged batch came again one by one, and everything after it too.
    const afterSwitch = sub.posts.slice(2);
    expect(afterSwitch.filter(Array.isArray)).toHaveLength(1);
    expect(Array.isArray(afterSwitch[0])).toBe(true);
    expect(afterSwitch.slice(1).every((body) => !Array.isArray(body))).toBe(true);
    expect(await bus.get('/subscribers')).toMatchObject([{ cursor: 10, batches: false, deadLetters: 0 }]);
    expect(await bus.metrics()).toMatch(/outcome="unacked",service="event-bus"\} 1/);
  });

  it('re-sends a batch answered 4xx one by one, so only the offending event is dead-lettered', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const sub = await subscriber(async (body) => {
      const events = Array.isArray(body) ? body : [body];
      if (events.some((e) => e.type === 'Bad'))
        return { status: 422, body: { errors: [{ message: 'bad' }] } };
      if (events[0]!.seq === 1) await held;
      return batchAnswer(body);
    });
    const bus = await startBus({ sub: sub.url });
    await bus.publish({ type: 'T', data: {} });
    await waitFor(() => sub.posts.length === 1);
    for (let i = 2; i <= 6; i++) await bus.publish({ type: i === 4 ? 'Bad' : 'T', data: { i } });
    release();
    await waitFor(() => bus.bus.deliveries.loops[0]!.cursor === 6);

    const shapes = sub.posts.map((body) => (Array.isArray(body) ? body.map((e) => e.seq) : body.seq));
    // seq 1 alone, [2..6] refused, then one by one: 2, 3, 4 (dead-lettered), 5, 6.
    expect(shapes).toEqual([1, [2, 3, 4, 5, 6], 2, 3, 4, 5, 6]);
    expect(await bus.get('/dead-letters')).toMatchObject([{ subscriber: 'sub', seq: 4, status: 422 }]);

    // And once past that batch, batches again.
    await bus.publish({ type: 'T', data: {} });
    await bus.publish({ type: 'T', data: {} });
    await waitFor(() => bus.bus.deliveries.loops[0]!.cursor === 8);
    expect(sub.posts.slice(7).every(Array.isArray)).toBe(true);
  });

  it('a slow or failing subscriber holds up nobody else', async () => {
    const down = await subscriber(() => ({ status: 500 }));
    const fine = await subscriber();
    const bus = await startBus({ down: down.url, fine: fine.url });
    for (let i = 1; i <= 3; i++) await bus.publish({ type: 'T', data: { i } });
    await waitFor(() => fine.posts.length === 3);
    expect(await bus.get('/subscribers')).toMatchObject([
      { name: 'down', cursor: 0, lag: 3 },
      { name: 'fine', cursor: 3, lag: 0 },
    ]);
  });

  it('stops at once, even during a long backoff or a POST that hangs', async () => {
    const failing = await subscriber(() => ({ status: 503 }));
    const hanging = await subscriber(() => new Promise<Answer>(() => undefined));
    const bus = await startBus({ failing: failing.url, hanging: hanging.url }, { retryMaxMs: 60_000 });
    await bus.publish({ type: 'T', data: {} });
    await waitFor(() => failing.posts.length >= 2 && hanging.posts.length === 1);
    // Well before the hanging POST's timeout (DELIVERY_TIMEOUT_MS) and the backoff (a minute).
    await settlesBefore(bus.stop(), DELIVERY_TIMEOUT_MS / 2, 'the bus stopping');
    expect(bus.bus.store.isOpen).toBe(false);
  });

  it('survives a client that leaves in the middle of a streamed GET /events', async () => {
    const bus = await startBus({});
    for (let i = 1; i <= 5000; i++)
      bus.bus.store.append({ type: 'T', data: { i, padding: 'x'.repeat(400) } });
    await new Promise<void>((resolve, reject) => {
      const req = http.get(`${bus.url}/events`, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', reject);
    });
    const res = await fetch(`${bus.url}/events?after=4999`);
    expect(await res.json()).toMatchObject([{ seq: 5000 }]);
  });
});
