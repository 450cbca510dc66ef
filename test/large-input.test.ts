import { afterAll, beforeAll, expect, it } from 'vitest';
import { EVENT_MAX_BYTES } from '@blog/common';
import { keptPost, raw, startBlog, type Stack } from './support/bad-input.js';
import { eventOfDeliveredSize } from './support/bus-routes.js';
import { waitFor } from './support/stack.js';

/**
 * Events as large as the limits allow, through the whole blog in this process (a real bus on SQLite, the
 * four services, real HTTP): whatever the bus stores, every service takes, alone or in a batch.
 */
let stack: Stack;
beforeAll(async () => {
  stack = await startBlog();
});
afterAll(() => stack?.stop());

const publish = (event: object) =>
  raw(stack.busUrl, {
    method: 'POST',
    path: '/events',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(event),
  });

/** Until the bus has had every event of its log acknowledged by every service. */
const allAcknowledged = () =>
  waitFor(() => stack.bus.deliveries.loops.every((loop) => loop.cursor === stack.bus.store.headSeq()));

/** What the bus counted of its deliveries to each subscriber: `outcome="..."` and how many. */
async function deliveryOutcomes(): Promise<Record<string, Record<string, number>>> {
  const text = await stack.bus.metrics.registry.metrics();
  const outcomes: Record<string, Record<string, number>> = {};
  for (const [, labels, count] of text.matchAll(/^eventbus_deliveries_total\{([^}]*)\} (\d+)$/gm)) {
    const subscriber = /subscriber="([^"]+)"/.exec(labels!)![1]!;
    const outcome = /outcome="([^"]+)"/.exec(labels!)![1]!;
    (outcomes[subscriber] ??= {})[outcome] = Number(count);
  }
  return outcomes;
}
const delivered = (outcomes: Record<string, Record<string, number>>) =>
  Object.values(outcomes).reduce((sum, bySubscriber) => sum + (bySubscriber.delivered ?? 0), 0);

/**
 * A post and a comment on it, each padded to EVENT_MAX_BYTES: between them they reach every service, as
 * each is sent only the types it acts on (PostCreated: posts, comments, query; CommentCreated: comments,
 * moderation, query).
 */
const largestPostAndComment = (name: string) => [
  eventOfDeliveredSize(EVENT_MAX_BYTES, `${name}-post`, 'PostCreated', { id: `${name}-post`, title: name }),
  eventOfDeliveredSize(EVENT_MAX_BYTES, `${name}-comment`, 'CommentCreated', {
    id: `${name}-comment`,
    postId: `${name}-post`,
    content: name,
    status: 'pending',
  }),
];

it('delivers events of EVENT_MAX_BYTES to every service, alone, then in batches', async () => {
  // A bus sends each subscriber single events until it answers that it takes batches.
  for (const event of largestPostAndComment('first')) expect((await publish(event)).status).toBe(200);
  await allAcknowledged();
  expect(stack.bus.deliveries.loops.map((loop) => loop.batches)).toEqual([true, true, true, true]);
  for (const event of largestPostAndComment('second')) expect((await publish(event)).status).toBe(200);
  await allAcknowledged();
  expect(stack.bus.store.deadLetters()).toEqual([]);
  const outcomes = await deliveryOutcomes();
  expect(Object.keys(outcomes).sort()).toEqual(['comments', 'moderation', 'posts', 'query']);
  for (const [subscriber, bySubscriber] of Object.entries(outcomes)) {
    expect(Object.keys(bySubscriber), subscriber).toEqual(['delivered']);
    expect(bySubscriber.delivered, subscriber).toBeGreaterThanOrEqual(2);
  }
  // Each service applied both large events of its types, the text with them.
  const posts = (await raw(stack.urls.query!, { method: 'GET', path: '/posts' })).body;
  expect(JSON.parse(posts)).toMatchObject({
    'second-post': { title: 'second', comments: [{ id: 'second-comment', content: 'second' }] },
  });
});

it('keeps every batch within what a subscriber takes, in bytes of UTF-8 rather than characters', async () => {
  await keptPost(stack);
  await allAcknowledged();
  const before = await deliveryOutcomes();
  // Six posts of 10,000 three-byte characters each, stored at once: 60,000 characters, but 180 KB.
  for (let i = 0; i < 6; i++)
    stack.bus.store.append({ type: 'PostCreated', data: { id: `wide-${i}`, title: '漢'.repeat(10_000) } });
  stack.bus.deliveries.wakeAll();
  await allAcknowledged();
  expect(stack.bus.store.deadLetters()).toEqual([]);
  const after = await deliveryOutcomes();
  const rejected = (outcomes: Record<string, Record<string, number>>) =>
    Object.values(outcomes).reduce((sum, bySubscriber) => sum + (bySubscriber['batch-rejected'] ?? 0), 0);
  expect(rejected(after)).toBe(rejected(before));
  expect(delivered(after)).toBeGreaterThan(delivered(before));
});
