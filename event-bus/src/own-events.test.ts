import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/wait-for.js';
import { createBus } from './app.js';
import { TELL_PASSES_AFTER_MS } from './delivery.js';

// A publisher's own events (docs/event-bus.md, "A publisher's own events"): the bus for real, on a free
// port with a temporary DATA_DIR, delivering over HTTP to a node:http subscriber written here, that acts
// on `Wanted` and lets the bus skip the other types, as the services do.

type Delivered = { seq: number; id: string; type: string; data: unknown };
interface Post {
  events: Delivered[];
  headers: http.IncomingHttpHeaders;
}

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** The subscriber: records each POST; `hold` may keep one unanswered until the promise it returns settles. */
async function subscriber(hold: (post: Post) => Promise<void> | undefined = () => undefined) {
  const posts: Post[] = [];
  const server = http.createServer((req, res) => {
    // It takes POSTs only: asked for a socket, it answers 404 and the bus POSTs each delivery.
    if (req.method !== 'POST') return void res.writeHead(404).end();
    let raw = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (raw += chunk));
    req.on('end', () => {
      const body = JSON.parse(raw) as Delivered | Delivered[];
      const post = { events: Array.isArray(body) ? body : [body], headers: req.headers };
      posts.push(post);
      void Promise.resolve(hold(post)).then(() => {
        res.writeHead(200, {
          'Content-Type': 'application/json',
          'X-Events-Batch': 'accept',
          'X-Events-Acked': String(post.events.at(-1)!.seq),
          'X-Events-Types': 'Wanted',
          'X-Events-Others': 'skip',
        });
        res.end('{}');
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/events`,
    posts,
    seqs: () => posts.flatMap((post) => post.events.map((event) => event.seq)),
  };
}

/** The bus delivering to `sub` alone, once it has delivered seq 1 (`Wanted`) and been told the types. */
async function busFor(sub: Awaited<ReturnType<typeof subscriber>>) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'event-bus-own-'));
  const bus = createBus({
    env: { PORT: '0', DATA_DIR: dir, LOG_LEVEL: 'silent', RETRY_MAX_MS: '20', SUBSCRIBERS: `sub=${sub.url}` },
  });
  const server = await bus.start();
  let stopped = false;
  const stop = async () => {
    if (!stopped) await bus.stop();
    stopped = true;
  };
  cleanups.push(async () => {
    await stop();
    await rm(dir, { recursive: true, force: true });
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const loop = bus.deliveries.loops[0]!;
  const publish = async (events: object | object[], headers: Record<string, string> = {}) => {
    const res = await fetch(`${url}/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(events),
    });
    return {
      status: res.status,
      passedThrough: res.headers.get('x-events-passed-through'),
      body: await res.json(),
    };
  };
  const metrics = async () => (await fetch(`${url}/metrics`)).text();
  await publish({ type: 'Wanted', data: { i: 1 } });
  await waitFor(() => loop.cursor === 1 && loop.types !== undefined);
  return { bus, loop, publish, metrics, url, dir, stop };
}

/** The headers a service of ours publishes with, as subscriber `sub` having applied `appliedSeq`. */
const asSub = (appliedSeq: number) => ({
  'X-Events-Publisher': 'sub',
  'X-Events-Applied': String(appliedSeq),
});

describe("a publisher's own events", () => {
  it('are passed over in its loop when it is idle, at its cursor and up to date, and the answer says so', async () => {
    const sub = await subscriber();
    const { loop, publish, metrics, url } = await busFor(sub);
    // Given a pass over a type the subscriber skips, which it has not been told of
    await publish({ type: 'Other', data: { i: 2 } });
    await waitFor(() => loop.cursor === 2);

    // When it publishes two events of a type it acts on, having applied seq 1
    const own = await publish(
      [
        { type: 'Wanted', data: { i: 3 } },
        { type: 'Wanted', data: { i: 4 } },
      ],
      asSub(1),
    );

    // Then the answer says every seq after 1 up to 2 is of a type it skips, and the cursor is past its own
    expect(own.status).toBe(200);
    expect(own.passedThrough).toBe('2');
    expect(loop.cursor).toBe(4);
    expect(await metrics()).toMatch(
      /eventbus_own_events_passed_total\{subscriber="sub",service="event-bus"\} 1/,
    );
    // And the next delivery starts after them, with the subscriber's cursor at the last of them
    await publish({ type: 'Wanted', data: { i: 5 } });
    await waitFor(() => loop.cursor === 5);
    expect(sub.seqs()).toEqual([1, 5]);
    expect(sub.posts[1]!.headers['x-events-cursor']).toBe('4');
    const status = (await (await fetch(`${url}/subscribers`)).json()) as Array<{
      cursor: number;
      lag: number;
    }>;
    expect(status).toMatchObject([{ cursor: 5, lag: 0 }]);
  });

  it('leave the cursor past them in SQLite, so a restarted bus does not deliver them', async () => {
    const sub = await subscriber();
    const { loop, publish, dir, stop } = await busFor(sub);
    const own = await publish({ type: 'Wanted', data: { i: 2 } }, asSub(1));
    expect(own.passedThrough).toBe('1');
    expect(loop.cursor).toBe(2);
    await stop();

    const restarted = createBus({
      env: { PORT: '0', DATA_DIR: dir, LOG_LEVEL: 'silent', SUBSCRIBERS: `sub=${sub.url}` },
    });
    expect(restarted.store.cursor('sub')).toBe(2);
    restarted.store.close();
    expect(sub.seqs()).toEqual([1]);
  });

  it('are delivered back when the publisher is behind what the bus delivered it', async () => {
    const sub = await subscriber();
    const { loop, publish } = await busFor(sub);
    // The publisher says it has applied nothing, while the bus delivered it seq 1.
    const own = await publish({ type: 'Wanted', data: { i: 2 } }, asSub(0));
    expect(own.passedThrough).toBeNull();
    await waitFor(() => loop.cursor === 2);
    expect(sub.seqs()).toEqual([1, 2]);
  });

  it('are delivered back while a POST to the publisher is on its way', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    // The POST that tells the subscriber of a pass (the log quiet for a while) is held unanswered.
    const sub = await subscriber((post) => (post.events[0]!.seq === 2 ? held : undefined));
    const { loop, publish } = await busFor(sub);
    await publish({ type: 'Other', data: { i: 2 } });
    await waitFor(() => sub.posts.length === 2, { timeoutMs: 10 * TELL_PASSES_AFTER_MS });
    // The cursor is the head and the publisher is up to date, but the POST's answer is still to come.
    expect(loop.cursor).toBe(2);
    const own = await publish({ type: 'Wanted', data: { i: 3 } }, asSub(1));
    expect(own.passedThrough).toBeNull();
    release();
    await waitFor(() => loop.cursor === 3);
    expect(sub.seqs()).toEqual([1, 2, 3]);
  });

  it('are delivered back, as in the course, when the publish does not name its publisher', async () => {
    const sub = await subscriber();
    const { loop, publish } = await busFor(sub);
    const own = await publish({ type: 'Wanted', data: { i: 2 } });
    expect(own.passedThrough).toBeNull();
    await waitFor(() => loop.cursor === 2);
    expect(sub.seqs()).toEqual([1, 2]);
  });

  it('refuses malformed publisher headers with 400 naming them, storing nothing', async () => {
    const sub = await subscriber();
    const { bus, publish } = await busFor(sub);
    const noApplied = await publish({ type: 'Wanted', data: {} }, { 'X-Events-Publisher': 'sub' });
    expect(noApplied).toMatchObject({ status: 400, body: { errors: [{ field: 'x-events-applied' }] } });
    const badName = await publish({ type: 'Wanted', data: {} }, { ...asSub(1), 'X-Events-Publisher': 'a b' });
    expect(badName).toMatchObject({ status: 400, body: { errors: [{ field: 'x-events-publisher' }] } });
    expect(bus.store.headSeq()).toBe(1);
  });
});
