import { describe } from 'vitest';
import {
  findNatsServer,
  TRANSPORTS,
  type SystemOptions,
  type Transport,
} from '../../scripts/src/processes.js';

/**
 * The process-level tests run against both transports. The nats variants need a nats-server: the one
 * startSystem runs (on PATH or /usr/sbin), or one already running at BLOG_NATS_URL. Without either they
 * are skipped, saying why; CI installs nats-server and fails on any skip.
 */
export const natsSkipReason =
  process.env.BLOG_NATS_URL || findNatsServer()
    ? undefined
    : 'skipped: nats-server not installed; apt-get install nats-server';

/** startSystem's options for a transport: on nats, BLOG_NATS_URL's server when given (else its own). */
export function systemOptionsFor(transport: Transport): Pick<SystemOptions, 'transport' | 'natsUrl'> {
  return transport === 'nats'
    ? { transport, natsUrl: process.env.BLOG_NATS_URL || undefined }
    : { transport };
}

/**
 * `describe(name, body)` once per transport, named `name (http)` and `name (nats)`; the nats one skipped
 * (with the reason printed and in its name) when no nats-server can be had.
 */
export function describeEachTransport(name: string, body: (transport: Transport) => void): void {
  for (const transport of TRANSPORTS) {
    const skip = transport === 'nats' ? natsSkipReason : undefined;
    if (skip) console.warn(`${name} (nats): ${skip}`);
    describe.skipIf(skip !== undefined)(`${name} (${transport}${skip ? `: ${skip}` : ''})`, () =>
      body(transport),
    );
  }
}
