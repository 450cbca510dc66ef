import {
  NatsTransport,
  readConfig,
  replicaName,
  transportConfig,
  unavailableMessage,
  type Logger,
} from '@blog/common';
import type { BusLog, PublishedHook } from './log.js';
import { consumerStatus } from './nats-subscribers.js';

/**
 * The bus with EVENT_TRANSPORT=nats (docs/event-bus.md): a gateway to the JetStream stream, so course-style
 * tools keep working. The log is the stream, nothing is kept here (so any number of gateways can run at
 * once), and each replica of each service reads the stream with its own consumer, so there are no delivery
 * loops and no dead letters: a message no service can take (not a JSON event) is skipped and logged by each.
 */
export function natsLog(source: NodeJS.ProcessEnv | undefined, log: Logger, published: PublishedHook) {
  const config = readConfig(transportConfig(), source);
  const transport = new NatsTransport({
    url: config.NATS_URL,
    stream: config.NATS_STREAM,
    replicas: config.NATS_REPLICAS,
    log,
    name: replicaName('event-bus'),
    token: config.EVENT_BUS_TOKEN,
  });

  let notReady = false;
  const busLog: BusLog = {
    async append(events) {
      // All sent at once, one message each: on the one connection they are stored in this order. Not
      // atomic as SQLite's commit is: if NATS fails half-way, the first ones are stored (events that
      // carry their own ids can be published again: only the rest is stored).
      const settled = await Promise.allSettled(events.map((event) => transport.publish(event)));
      const stored = settled.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
      published(events.slice(0, stored.length), stored);
      const failed = settled.find((result) => result.status === 'rejected');
      if (failed) throw failed.reason;
      // JetStream delivers every event to every replica: nothing is passed over for its publisher.
      return { results: stored };
    },
    head: () => transport.headSeq(),
    async *read(afterSeq, throughSeq, chunk) {
      for await (const batch of transport.read(afterSeq, throughSeq)) {
        for (let start = 0; start < batch.length; start += chunk) {
          yield batch.slice(start, start + chunk).map((event) => JSON.stringify(event));
        }
      }
    },
    subscribers: () => consumerStatus(transport.client),
    // JetStream keeps no dead letters here: see above.
    deadLetters: async () => [],
    readiness: () =>
      transport.headSeq().then(
        () => {
          notReady = false;
          return { ready: true };
        },
        (err: Error) => {
          // The answer says what is unreachable; the log says where, once per change of state.
          if (!notReady) log.warn({ err: err.message }, 'not ready');
          notReady = true;
          return { ready: false, reason: unavailableMessage(err) };
        },
      ),
    // Connects (and creates the stream if it is missing) at start, rather than on the first request.
    describe: async () => ({
      natsUrl: transport.url,
      stream: transport.stream,
      headSeq: await transport.headSeq().catch((err: Error) => {
        log.warn({ err: err.message }, 'NATS not reachable yet');
        return null;
      }),
    }),
    // JetStream delivers.
    start: () => undefined,
    async stop(requestsDone) {
      await requestsDone;
      await transport.close();
    },
  };
  return { config, transport, log: busLog };
}
