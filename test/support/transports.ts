import { natsAvailability } from '@blog/common/testing';
import { describe } from 'vitest';
import { TRANSPORTS, type Transport } from '../../scripts/src/process/names.js';
import type { SystemOptions } from '../../scripts/src/process/system-types.js';

/**
 * The process-level tests run against both transports. On nats they run on a nats-server of their own
 * (startSystem starts it), or on CI's shared one at BLOG_NATS_URL, each system on a stream of its own;
 * tests that kill the nats-server need one of their own (`needs: 'binary'`). Without a nats-server the nats
 * variants are skipped, saying why (natsAvailability prints it); CI installs nats-server and fails on any skip.
 */

/** startSystem's options for a transport; `ownNats`: never BLOG_NATS_URL's server (it is to be killed). */
export function systemOptionsFor(
  transport: Transport,
  { ownNats = false } = {},
): Pick<SystemOptions, 'transport' | 'natsUrl'> {
  const shared = ownNats ? undefined : process.env.BLOG_NATS_URL || undefined;
  return transport === 'nats' ? { transport, natsUrl: shared } : { transport };
}

/**
 * `describe(name, body)` once per transport, named `name (http)` and `name (nats)`; the nats one skipped,
 * with the reason in its name, when no nats-server can be had. `needs: 'binary'` for tests that kill it.
 */
export function describeEachTransport(
  name: string,
  body: (transport: Transport) => void,
  { needs = 'any' }: { needs?: 'any' | 'binary' } = {},
): void {
  for (const transport of TRANSPORTS) {
    const nats = transport === 'nats' ? natsAvailability({ needs }) : undefined;
    const title = nats?.skip ? `${name} (${transport}: ${nats.reason})` : `${name} (${transport})`;
    describe.skipIf(!!nats?.skip)(title, () => body(transport));
  }
}
