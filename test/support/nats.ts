import { afterAll, beforeAll } from 'vitest';
import { startNatsServer, type NatsServer } from '@blog/common/nats-server';
import { natsForTests } from '@blog/common/testing';

/**
 * The vitest side of `@blog/common/nats-server` and `@blog/common/testing` (which do not import vitest,
 * being plain code): a NATS for the tests of the calling `describe` block, started before them and stopped after.
 */

/** BLOG_NATS_URL if CI set it, else a nats-server of this block's own: for tests that never kill it. */
export function useNats(): () => { url: string } {
  let nats: Awaited<ReturnType<typeof natsForTests>> | undefined;
  beforeAll(async () => {
    nats = await natsForTests();
  });
  afterAll(() => nats?.stop());
  return () => nats!;
}

/** A nats-server of this block's own, which its tests may kill and restart. */
export function useOwnNatsServer(): () => NatsServer {
  let server: NatsServer | undefined;
  beforeAll(async () => {
    server = await startNatsServer();
  });
  afterAll(() => server?.stop());
  return () => server!;
}
