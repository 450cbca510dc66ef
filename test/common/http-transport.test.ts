import {
  createLogger,
  createMetrics,
  HttpTransport,
  Subscriber,
  type IncomingEvent,
  type OutgoingEvent,
  type Projection,
  type StoredEvent,
} from '@blog/common';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { startStack } from '../support/stack.js';

// HttpTransport against a real bus (SQLite in a temporary folder) over real HTTP, and a subscriber's catch-up
// at start through it.
let stack: Awaited<ReturnType<typeof startStack>> | undefined;
let transport: HttpTransport | undefined;
afterEach(async () => {
  transport?.close();
  await stack?.stop();
  stack = transport = undefined;
});

describe('HttpTransport', () => {
  it('groups publishes made at once into requests the bus takes (within its body limit), in order', async () => {
    stack = await startStack([], { busEnv: { SUBSCRIBERS: 'elsewhere=http://127.0.0.1:9/events' } });
    transport = new HttpTransport(stack.busUrl);
    // 40 events of 10 KB: 400 KB waiting at once, four times what one request may carry.
    const text = 'x'.repeat(10_000);
    const stored = await Promise.all(
      Array.from({ length: 40 }, (_, i) => transport!.publish({ type: 'Note', data: { i, text } })),
    );
    expect(stored.map((result) => result.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    const log = (await request(stack.busUrl).get('/events').expect(200)).body as StoredEvent[];
    expect(log.map((event) => event.data.i)).toEqual(Array.from({ length: 40 }, (_, i) => i));
    // Not one request refused as too large (and then sent again event by event).
    const metrics = await stack.bus.metrics.registry.metrics();
    expect(metrics).toMatch(/http_request_duration_seconds_count\{[^}]*route="\/events"[^}]*status="200"/);
    expect(metrics).not.toMatch(/http_request_duration_seconds_count\{[^}]*status="413"/);
  });

  it('reads a page with the head of the log the bus reports (X-Last-Seq)', async () => {
    stack = await startStack([], { busEnv: { SUBSCRIBERS: 'elsewhere=http://127.0.0.1:9/events' } });
    transport = new HttpTransport(stack.busUrl);
    for (let i = 0; i < 5; i++) await transport.publish({ type: 'T', data: { i } });
    const page = await transport.fetchAfter(1, 2);
    expect(page.events.map((event) => event.seq)).toEqual([2, 3]);
    expect(page.headSeq).toBe(5);
    expect(await transport.fetchAfter(5, 10)).toEqual({ events: [], headSeq: 5 });
  });

  it('reads a page of some types, with the seq up to which it covers the log', async () => {
    stack = await startStack([], { busEnv: { SUBSCRIBERS: 'elsewhere=http://127.0.0.1:9/events' } });
    transport = new HttpTransport(stack.busUrl);
    for (const type of ['A', 'B', 'A', 'B', 'B']) await transport.publish({ type, data: {} });
    const page = await transport.fetchAfter(1, 3, ['A']);
    expect(page.events.map((event) => event.seq)).toEqual([3]);
    expect(page).toMatchObject({ headSeq: 5, throughSeq: 4 });
    expect(await transport.fetchAfter(3, 10, ['A'])).toEqual({ events: [], headSeq: 5, throughSeq: 5 });
  });
});

/** Comments counted by status: CommentCreated and CommentUpdated, not CommentModerated. */
const counter: Projection<{ created: number; updated: number }> = {
  types: ['CommentCreated', 'CommentUpdated'],
  initial: () => ({ created: 0, updated: 0 }),
  apply(state, event) {
    if (event.type === 'CommentCreated') state.created++;
    if (event.type === 'CommentUpdated') state.updated++;
  },
};

/** `comments` comments, each with its CommentCreated, CommentModerated and CommentUpdated, as the log has them. */
function commentEvents(comments: number): OutgoingEvent[] {
  return Array.from({ length: comments }, (_, i) => {
    const data = { id: `c${i}`, postId: 'p', content: 'fine', status: 'approved' as const };
    return [
      { type: 'CommentCreated', data: { ...data, status: 'pending' as const } },
      { type: 'CommentModerated', data },
      { type: 'CommentUpdated', data },
    ];
  }).flat();
}

async function logOf(events: OutgoingEvent[]) {
  stack = await startStack([], { busEnv: { SUBSCRIBERS: 'elsewhere=http://127.0.0.1:9/events' } });
  transport = new HttpTransport(stack.busUrl);
  await Promise.all(events.map((event) => transport!.publish(event)));
  return transport;
}

const subscriberOn = <State>(projection: Projection<State>, on: HttpTransport) => {
  const subscriber = new Subscriber(projection, on, createLogger('query', 'silent'), createMetrics('query'));
  const told: IncomingEvent[] = [];
  subscriber.onApplied((event) => told.push(event));
  return { subscriber, told };
};

// A projection that acts on some types and reacts to none asks for those types alone, except at the end of
// the log, read whole.
describe('Subscriber catch-up at start', () => {
  it('reads only the types it acts on, then the last events whole; every seq counts as applied', async () => {
    // 1,200 comments: 3,600 events, 2,600 of them older than the tail the catch-up reads whole.
    const { subscriber, told } = subscriberOn(counter, await logOf(commentEvents(1200)));
    expect(await subscriber.start()).toBe(3600);
    expect(subscriber.appliedSeq).toBe(3600);
    expect(subscriber.state).toEqual({ created: 1200, updated: 1200 });
    const tail = told.filter((event) => event.seq! > 2600);
    expect(tail.map((event) => event.seq)).toEqual(Array.from({ length: 1000 }, (_, i) => 2601 + i));
    // The first page is one event, whatever its type; after it, CommentModerated only in the tail.
    const older = told.filter((event) => event.seq! > 1 && event.seq! <= 2600);
    const notModerated = Array.from({ length: 2599 }, (_, i) => i + 2).filter((seq) => seq % 3 !== 2);
    expect(older.map((event) => event.seq)).toEqual(notModerated);
    expect(older.some((event) => event.type === 'CommentModerated')).toBe(false);
  });

  it('reads every event when the projection reacts (the reactions in the log are no longer owed)', async () => {
    const reacting: Projection<{ created: number; updated: number }> = { ...counter, react: () => [] };
    const { subscriber, told } = subscriberOn(reacting, await logOf(commentEvents(1200)));
    await subscriber.start();
    expect(told.map((event) => event.seq)).toEqual(Array.from({ length: 3600 }, (_, i) => i + 1));
  });
});
