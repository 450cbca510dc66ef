import { HttpTransport, type StoredEvent } from '@blog/common';
import request from 'supertest';
import { afterEach, describe, expect, it } from 'vitest';
import { startStack } from '../support/stack.js';

// HttpTransport against a real bus (SQLite in a temporary folder) over real HTTP.
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
});
