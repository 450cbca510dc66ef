import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsCluster, type NatsCluster } from './nats-cluster.js';
import { loadNats } from './nats-libraries.js';
import { uniqueStreamName } from './nats-server.js';
import { natsAvailability } from './testing/nats.js';
import { pollUntil } from './process/readiness.js';

// Three real nats-servers in one cluster: a stream replicated on all three takes writes while one is down,
// and the node that comes back catches up.
const nats = natsAvailability({ needs: 'binary' });
const TOKEN = 'nats-cluster-token-0123456789';

describe.skipIf(nats.skip)(`a three-node NATS cluster (${nats.reason})`, () => {
  let cluster: NatsCluster;
  beforeAll(async () => {
    cluster = await startNatsCluster({ nodes: 3, token: TOKEN });
  });
  afterAll(() => cluster?.stop());

  it('keeps a three-replica stream writable with a node SIGKILLed, and serves it again once it is back', async () => {
    expect(cluster.url.split(',')).toHaveLength(3);
    const { connect, jetstreamManager } = await loadNats();
    const nc = await connect({ servers: cluster.url.split(','), token: TOKEN, maxReconnectAttempts: -1 });
    try {
      const jsm = await jetstreamManager(nc);
      const stream = uniqueStreamName();
      await jsm.streams.add({ name: stream, subjects: [`${stream}.events`], num_replicas: 3 });
      // A new stream takes writes once its replicas have elected a leader (until then: no responders).
      await pollUntil(
        'the stream got no leader',
        async () => {
          if (!(await jsm.streams.info(stream)).cluster?.leader) throw new Error('no leader yet');
        },
        { timeoutMs: 30_000 },
      );
      const js = jsm.jetstream();
      await js.publish(`${stream}.events`, 'before', { timeout: 10_000 });
      await cluster.nodes[0]!.kill();
      // The client may have been on the killed node, or the stream's leader may have been there: until it
      // has reconnected and the others have elected a leader, a publish fails. The same message id makes
      // the tries store it once.
      let during: { seq: number } | undefined;
      await pollUntil(
        'the stream took no write with a node down',
        async () => {
          during = await js.publish(`${stream}.events`, 'during', { msgID: 'during', timeout: 5_000 });
        },
        { timeoutMs: 60_000 },
      );
      expect(during?.seq).toBe(2);
      await cluster.nodes[0]!.restart();
      await cluster.ready();
      // The node back catches up: until it has, an answer may come from its copy, still one message short.
      let info = await jsm.streams.info(stream);
      await pollUntil(
        'the stream did not show both messages on three current replicas',
        async () => {
          info = await jsm.streams.info(stream);
          const replicas = info.cluster?.replicas ?? [];
          if (
            info.state.messages !== 2 ||
            replicas.length !== 2 ||
            !replicas.every((replica) => replica.current)
          ) {
            throw new Error(`${info.state.messages} messages, ${replicas.length} other replicas`);
          }
        },
        { timeoutMs: 30_000 },
      );
      expect(info.state.messages).toBe(2);
      expect(info.cluster?.replicas?.length).toBe(2);
    } finally {
      await nc.close();
    }
  }, 150_000);

  it('serves only clients that present the token', async () => {
    const { connect } = await loadNats();
    await expect(
      connect({ servers: cluster.url.split(','), timeout: 2000, maxReconnectAttempts: 0 }),
    ).rejects.toThrow(/authorization/i);
  });
});
