import { afterEach, describe, expect, it } from 'vitest';
import { startStack } from '../../test/support/stack.js';
import { HttpTransport } from './transport.js';

// HttpTransport against a real bus (SQLite in a temporary folder) over real HTTP.
let stack: Awaited<ReturnType<typeof startStack>> | undefined;
let transport: HttpTransport | undefined;
afterEach(async () => {
  transport?.close();
  await stack?.stop();
  stack = transport = undefined;
});

describe('HttpTransport', () => {
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
