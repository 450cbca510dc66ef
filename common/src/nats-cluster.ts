import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadNats } from './nats-libraries.js';
import {
  findNatsServerBinary,
  freePort,
  natsServerHandle,
  natsServerProcess,
  uniqueStreamName,
  type NatsServer,
} from './nats-server.js';
import { pollUntil } from './process/readiness.js';

/**
 * A JetStream cluster of real nats-server processes on 127.0.0.1 (import from `@blog/common/nats-cluster`),
 * as the `nats` profile runs one in Kubernetes: each node with its own client port, cluster port and store,
 * routes to every other node, and JetStream. Any node can be SIGKILLed and started again on the same ports
 * and store, which is how chaos and the tests check what a cluster survives.
 */
export interface NatsCluster {
  /** Every node's URL, comma-separated: what NATS_URL takes. */
  readonly url: string;
  readonly nodes: readonly NatsServer[];
  /**
   * Resolves once the cluster can place a stream on every node (at most 3): JetStream has elected its meta
   * leader and that leader knows the other nodes. A meta leader alone is not enough: right after a start, a
   * stream of three replicas was refused with "no suitable peers for placement".
   */
  ready(timeoutMs?: number): Promise<void>;
  /** Kills every node and removes their stores. */
  stop(): Promise<void>;
}

const CLUSTER_READY_TIMEOUT_MS = 30_000;

/** Starts `nodes` nats-servers in one cluster (3 by default); with `token`, they serve only clients that present it. */
export async function startNatsCluster(
  options: { nodes?: number; token?: string } = {},
): Promise<NatsCluster> {
  const binary = findNatsServerBinary();
  if (!binary) throw new Error('nats-server not installed; apt-get install nats-server');
  const count = options.nodes ?? 3;
  const root = mkdtempSync(path.join(tmpdir(), 'nats-cluster-'));
  const ports = await distinctFreePorts(count * 2);
  const clientPorts = ports.slice(0, count);
  const routePorts = ports.slice(count);
  const routes = routePorts.map((port) => `nats-route://127.0.0.1:${port}`);
  const nodes = clientPorts.map((port, index) => {
    const storeDir = path.join(root, `n${index}`);
    const configFile = path.join(root, `n${index}.conf`);
    writeFileSync(
      configFile,
      nodeConfig({ index, port, routePort: routePorts[index]!, routes, storeDir, token: options.token }),
      {
        mode: 0o600,
      },
    );
    return natsServerHandle(natsServerProcess(binary, port, ['-c', configFile]), port, storeDir);
  });
  const cluster: NatsCluster = {
    url: nodes.map((node) => node.url).join(','),
    nodes,
    ready: (timeoutMs = CLUSTER_READY_TIMEOUT_MS) =>
      jetStreamPlaces(cluster.url, options.token, Math.min(3, count), timeoutMs),
    async stop() {
      await Promise.all(nodes.map((node) => node.kill()));
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    await Promise.all(nodes.map((node) => node.restart()));
    await cluster.ready();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** One node's configuration: its name, ports and store, the routes to every node (its own is skipped), the token. */
function nodeConfig(node: {
  index: number;
  port: number;
  routePort: number;
  routes: string[];
  storeDir: string;
  token?: string;
}): string {
  const lines = [
    `server_name: n${node.index}`,
    `listen: 127.0.0.1:${node.port}`,
    `jetstream { store_dir: ${JSON.stringify(node.storeDir)} }`,
    `cluster { name: blog, listen: 127.0.0.1:${node.routePort}, routes: [${node.routes.join(', ')}] }`,
  ];
  // The token's alphabet (common/src/token.ts) has no quote or backslash: it stands as is in the string.
  if (node.token) lines.push(`authorization { token: ${JSON.stringify(node.token)} }`);
  return `${lines.join('\n')}\n`;
}

/**
 * Polls until the cluster at `url` places a stream of `replicas` (a probe in memory, deleted at once): its
 * meta leader is elected and knows that many nodes.
 */
async function jetStreamPlaces(
  url: string,
  token: string | undefined,
  replicas: number,
  timeoutMs: number,
): Promise<void> {
  const { connect, jetstreamManager } = await loadNats();
  await pollUntil(
    `the NATS cluster at ${url} did not place a stream on ${replicas} nodes`,
    async (attemptMs) => {
      const nc = await connect({ servers: url.split(','), token, timeout: attemptMs });
      try {
        const jsm = await jetstreamManager(nc, { timeout: attemptMs });
        const probe = uniqueStreamName('ready');
        await jsm.streams.add({
          name: probe,
          subjects: [`${probe}.probe`],
          num_replicas: replicas,
          storage: 'memory',
        });
        await jsm.streams.delete(probe);
      } finally {
        await nc.close();
      }
    },
    { timeoutMs },
  );
}

/** `count` ports free right now, all different. */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}
