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
const delivered = () =>
  waitFor(() => stack.bus.deliveries.loops.every((loop) => loop.cursor === stack.bus.store.headSeq()));

/** What the bus counted of its deliveries: `outcome="..."` and how many, for every subscriber together. */
async function deliveryOutcomes(): Promise<Record<string, number>> {
  const text = await stack.bus.metrics.registry.metrics();
  const outcomes: Record<string, number> = {};
  for (const [, outcome, count] of text.matchAll(
    /^eventbus_deliveries_total\{[^}]*outcome="([^"]+)"[^}]*\} (\d+)$/gm,
  ))
    outcomes[outcome!] = (outcomes[outcome!] ?? 0) + Number(count);
  return outcomes;
}

it('delivers an event of EVENT_MAX_BYTES to every service, alone, then as a batch of one', async () => {
  // A bus sends each subscriber single events until it answers that it takes batches.
  expect((await publish(eventOfDeliveredSize(EVENT_MAX_BYTES, 'first'))).status).toBe(200);
  await delivered();
  expect(stack.bus.deliveries.loops.map((loop) => loop.batches)).toEqual([true, true, true, true]);
  expect((await publish(eventOfDeliveredSize(EVENT_MAX_BYTES, 'second'))).status).toBe(200);
  await delivered();
  expect(stack.bus.store.deadLetters()).toEqual([]);
  expect(await deliveryOutcomes()).toEqual({ delivered: 8 });
});

it('keeps every batch within what a subscriber takes, in bytes of UTF-8 rather than characters', async () => {
  await keptPost(stack);
  await delivered();
  const before = await deliveryOutcomes();
  // Six events of 10,000 three-byte characters each, stored at once: 60,000 characters, but 180 KB.
  for (let i = 0; i < 6; i++) stack.bus.store.append({ type: 'Wide', data: { text: '漢'.repeat(10_000) } });
  stack.bus.deliveries.wakeAll();
  await delivered();
  expect(stack.bus.store.deadLetters()).toEqual([]);
  const after = await deliveryOutcomes();
  expect(after['batch-rejected'] ?? 0).toBe(before['batch-rejected'] ?? 0);
  expect(after.delivered).toBeGreaterThan(before.delivered!);
});
