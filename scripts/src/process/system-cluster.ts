import { startNatsCluster, type NatsCluster } from '@blog/common/nats-cluster';
import type { NatsServer } from '@blog/common/nats-server';
import { StartError } from '@blog/common/process';
import type { ProcessName } from './names.js';
import type { ControlledProcess } from './system-processes.js';
import type { SystemOptions } from './system-types.js';

/** Node `index` of the cluster. */
export const natsNodeName = (index: number): ProcessName => `nats-${index}`;

/** The cluster `natsNodes` asks for (above 1, on transport nats without `natsUrl`), ready; else undefined. */
export async function clusterFor(options: SystemOptions): Promise<NatsCluster | undefined> {
  const nodes = options.natsNodes ?? 1;
  if (nodes === 1) return undefined;
  return startNatsCluster({ nodes, token: options.eventBusToken }).catch((err: Error) => {
    throw new StartError(`The NATS cluster of ${nodes} nodes could not start: ${err.message}`, 'nats');
  });
}

/** Checks `replicas` and `natsNodes`: whole numbers, and above 1 only where they can work. */
export function checkScaleOptions(options: SystemOptions): void {
  const { replicas = 1, natsNodes = 1 } = options;
  for (const [name, value] of [
    ['replicas', replicas],
    ['natsNodes', natsNodes],
  ] as const) {
    if (!Number.isInteger(value) || value < 1)
      throw new StartError(`${name} must be a whole number, 1 or more`);
  }
  if (replicas > 1 && options.transport !== 'nats') {
    throw new StartError(
      'More than one replica needs transport nats: the HTTP bus delivers each event to one address per subscriber',
    );
  }
  if (natsNodes > 1 && (options.transport !== 'nats' || options.natsUrl !== undefined)) {
    throw new StartError(
      'natsNodes is the nats-servers startSystem runs: it needs transport nats and no natsUrl',
    );
  }
}

/**
 * A node of the cluster as the system's handle drives it: SIGKILL only (the cluster's nodes are not
 * stopped gently), a restart on the same ports and store, no logs kept.
 */
export function clusterNodeProcess(node: NatsServer, name: ProcessName): ControlledProcess {
  let restarts = 0;
  return {
    name,
    port: node.port,
    url: node.url,
    cancelRestart: () => undefined,
    process: {
      get pid() {
        return node.pid;
      },
      get running() {
        return node.running;
      },
      get restarts() {
        return restarts;
      },
      logs: () => [],
      async kill(signal = 'SIGKILL') {
        if (signal !== 'SIGKILL') throw new Error(`${name} is a node of a cluster: it takes SIGKILL only`);
        await node.kill();
        return undefined;
      },
      async restart() {
        await node.restart();
        restarts++;
      },
    },
  };
}
