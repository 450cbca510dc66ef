import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNatsCluster, type NatsCluster } from './nats-cluster.js';
import { uniqueStreamName } from './nats-server.js';
import { NatsTransport } from './nats-transport.js';
import { natsAvailability } from './testing/nats.js';
import { waitFor } from '../../test/support/wait-for.js';

// A replay's consumer lives on one node of the stream, any of them: one that has just come back holds
// only part of the stream while it catches up. A replay must still read up to the head the leader gave.
const nats = natsAvailability({ needs: 'binary' });

describe.skipIf(nats.skip)(`replays on a three-node cluster with a lagging node (${nats.reason})`, () => {
  let cluster: NatsCluster;
  const transports: NatsTransport[] = [];
  beforeAll(async () => {
    cluster = await startNatsCluster({ nodes: 3 });
  });
  afterAll(async () => {
    await Promise.all(transports.map((transport) => transport.close()));
    await cluster?.stop();
  });

  it('reads every event up to the head while a node that came back is still catching up', async () => {
    const stream = uniqueStreamName('lagging');
    const transport = new NatsTransport({ url: cluster.url, stream, replicas: 3, timeoutMs: 10_000 });
    transports.push(transport);
    await transport.publish({ type: 'T', data: {}, id: 'before' });
    const { jsm } = await transport.client.jetStream();
    // A node that is not the stream's leader misses what follows.
    const leader = (await jsm.streams.info(stream)).cluster!.leader!;
    const behind = cluster.nodes.find((_, index) => `n${index}` !== leader)!;
    // Written and read through the two nodes that run, connected before the kill: no call waits for
    // the client to leave the dead node. Where a replay's consumer is placed does not depend on it. A
    // call that meets the node while it rejoins fails in a short time, so the next ones still meet it lagging.
    const onRunning = new NatsTransport({
      url: cluster.nodes
        .filter((node) => node !== behind)
        .map((node) => node.url)
        .join(','),
      stream,
      replicas: 3,
      timeoutMs: 2000,
    });
    transports.push(onRunning);
    const { jsm: clientJsm } = await onRunning.client.jetStream();
    const padding = 'x'.repeat(4000);
    /** Kills `behind`, writes what it misses, brings it back and replays while it catches up. */
    const replaysWhileCatchingUp = async (round: number) => {
      await behind.kill();
      for (let from = 0; from < 4000; from += 500) {
        await Promise.all(
          Array.from({ length: 500 }, (_, i) =>
            onRunning.publish({ type: 'T', data: { padding }, id: `missed-${round}-${from + i}` }),
          ),
        );
      }
      const head = await onRunning.headSeq();
      await behind.restart();
      // Each replay asks for the last event only: one whose consumer is placed on the node catching up
      // finds it there only once that node has it.
      const reads: number[][] = [];
      await waitFor(
        async () => {
          const pages = await Promise.all(
            Array.from({ length: 6 }, () => onRunning.fetchAfter(head - 1, 10).catch(() => undefined)),
          );
          for (const page of pages) if (page) reads.push(page.events.map((event) => event.seq));
          const info = await clientJsm.streams.info(stream).catch(() => undefined);
          const replicas = info?.cluster?.replicas ?? [];
          return replicas.length === 2 && replicas.every((r) => r.current && (r.lag ?? 0) === 0);
        },
        { timeoutMs: 60_000, message: 'the node that came back never caught up' },
      );
      return { head, reads };
    };
    // Every call may meet the node while it rejoins (and time out) until it has caught up: then again.
    for (let round = 1; round <= 5; round++) {
      const { head, reads } = await replaysWhileCatchingUp(round);
      expect(reads.filter((seqs) => seqs.length !== 1 || seqs[0] !== head)).toEqual([]);
      if (reads.length > 0) return;
    }
    expect.fail('no replay was answered while the node caught up, in five rounds');
  }, 180_000);
});
