/**
 * The NATS client libraries, loaded on first use: every service imports the NATS transport, and one on the
 * HTTP bus should not pay their load time at each start.
 */
let natsLibraries:
  Promise<typeof import('@nats-io/transport-node') & typeof import('@nats-io/jetstream')> | undefined;
export const loadNats = () =>
  (natsLibraries ??= Promise.all([import('@nats-io/transport-node'), import('@nats-io/jetstream')]).then(
    ([transport, jetstream]) => ({ ...transport, ...jetstream }),
  ));
