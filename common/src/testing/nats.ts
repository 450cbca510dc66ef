import { findNatsServerBinary, startNatsServer } from '../nats-server.js';

/**
 * What the NATS tests need besides a server: whether they can run here, and a server to share.
 *
 * CI may start one server for everything and export its URL as BLOG_NATS_URL: tests that never kill the
 * server use it (`natsForTests`), each on a stream of its own (`uniqueStreamName`), so they never collide.
 */

/** What `describe.skipIf` needs to know, and why. */
export interface NatsAvailability {
  /** true when these tests cannot run here. */
  skip: boolean;
  reason: string;
}

/** The server CI started for every test (BLOG_NATS_URL), if any. */
export const sharedNatsUrl = (): string | undefined => process.env.BLOG_NATS_URL || undefined;

/**
 * Whether NATS tests can run: `needs: 'binary'` for tests that kill and restart the server themselves,
 * `'any'` (default) for those a shared BLOG_NATS_URL server serves as well. When they cannot, the reason is
 * printed once, so a skipped suite is never silent.
 */
export function natsAvailability({ needs = 'any' }: { needs?: 'any' | 'binary' } = {}): NatsAvailability {
  if (findNatsServerBinary()) return { skip: false, reason: 'nats-server found' };
  if (needs === 'any' && sharedNatsUrl()) return { skip: false, reason: 'BLOG_NATS_URL is set' };
  const reason =
    needs === 'binary'
      ? 'skipped: nats-server not installed; apt-get install nats-server (these tests kill and restart it, so BLOG_NATS_URL does not do)'
      : 'skipped: nats-server not installed; apt-get install nats-server (or set BLOG_NATS_URL)';
  if (!printed.has(reason)) {
    printed.add(reason);
    console.warn(`NATS tests ${reason}`);
  }
  return { skip: true, reason };
}
const printed = new Set<string>();

/**
 * For tests that never kill the server: BLOG_NATS_URL if set, else a server of their own. `stop` stops only
 * what this call started.
 */
export async function natsForTests(): Promise<{ url: string; stop(): Promise<void> }> {
  const shared = sharedNatsUrl();
  if (shared) return { url: shared, stop: async () => undefined };
  const server = await startNatsServer();
  return { url: server.url, stop: () => server.stop() };
}
