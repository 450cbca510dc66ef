import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadNats } from './nats-libraries.js';
import {
  findNatsServerBinary,
  freePort,
  natsServerHandle,
  natsServerProcess,
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
  /** Resolves once JetStream answers through the cluster (it has elected its meta leader). */
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
    ready: (timeoutMs = CLUSTER_READY_TIMEOUT_MS) => jetStreamAnswers(cluster.url, options.token, timeoutMs),
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

/** Polls until a JetStream API call succeeds through `url`: the cluster has a meta leader and serves streams. */
async function jetStreamAnswers(url: string, token: string | undefined, timeoutMs: number): Promise<void> {
  const { connect, jetstreamManager } = await loadNats();
  await pollUntil(
    `the NATS cluster at ${url} did not serve JetStream`,
    async (attemptMs) => {
      const nc = await connect({ servers: url.split(','), token, timeout: attemptMs });
      try {
        const jsm = await jetstreamManager(nc, { timeout: attemptMs });
        await jsm.getAccountInfo();
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
