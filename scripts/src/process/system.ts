/**
 * Runs the five built services as separate processes on localhost: the engine behind `npm start`, the
 * end-to-end tests and the benchmark.
 *
 *   const system = await startSystem({ quiet: true });        // free ports, a fresh temporary data dir
 *   await fetch(`${system.urls.posts}/posts`);
 *   await system.kill('query');                                // SIGKILL, stays down
 *   await system.restart('query');                             // back, and ready (caught up)
 *   await system.stop();                                       // SIGTERM all, SIGKILL after 10 s
 *
 *   const onNats = await startSystem({ transport: 'nats' });   // its own nats-server, JetStream in dataDir
 *   await onNats.kill('nats');                                 // the nats-server too: SIGKILL, stays down
 *   await onNats.restart('nats');                              // same port, same store
 *
 *   const scaled = await startSystem({ transport: 'nats', replicas: 2, natsNodes: 3 });
 *   scaled.replicas.query;                                     // query-0 and query-1, each its own URL
 *   await scaled.kill('nats-1');                               // one node of the cluster
 *   await scaled.addReplica('query');                          // query-2, ready once caught up
 *
 * Import it from `scripts/src/process/system.ts` in vitest and `scripts/dist/process/system.js` in node.
 * Each service is `node <service>/dist/index.js` (run `npm run build` first), listening on 127.0.0.1 only
 * (HOST), configured by PORT, EVENT_TRANSPORT, EVENT_BUS_URL, SUBSCRIBERS and DATA_DIR (or, with
 * `transport: 'nats'`, NATS_URL and NATS_STREAM; a replica also by HOSTNAME, a cluster's by NATS_REPLICAS), and counts as started when `GET /readyz` answers 200;
 * the nats-server when it greets a client (`INFO`).
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TOKEN_PATTERN } from '@blog/common';
import { findNatsServerBinary, uniqueStreamName } from '@blog/common/nats-server';
import { StartError } from '@blog/common/process';
import type { NatsCluster } from '@blog/common/nats-cluster';
import {
  DEFAULT_NATS_PORT,
  DEFAULT_PORTS,
  NATS_INSTALL_HINT,
  ROOT_DIR,
  SERVICE_NAMES,
  SUBSCRIBER_NAMES,
  replicaName,
  type ProcessName,
  type ServiceName,
  type SubscriberName,
} from './names.js';
import { assertPortsFree, freePorts } from './ports.js';
import { checkScaleOptions, clusterFor, natsNodeName } from './system-cluster.js';
import { runSystem } from './system-run.js';
import { routerPortOf, type SystemLayout } from './system-processes.js';
import type { Replica, System, SystemOptions } from './system-types.js';

export async function startSystem(options: SystemOptions = {}): Promise<System> {
  const rootDir = options.rootDir ?? ROOT_DIR;
  const natsServer = checkStartable(options, rootDir);
  const ownDataDir = options.dataDir === undefined;
  const dataDir = path.resolve(options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'blog-data-')));
  mkdirSync(dataDir, { recursive: true });
  let cluster: NatsCluster | undefined;
  const cleanUp = async () => {
    await cluster?.stop();
    if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
  };

  const replicas = options.replicas ?? 1;
  const fixed = fixedPorts(options, replicas, !!natsServer);
  const names: ProcessName[] = [
    ...(natsServer ? (['nats'] as const) : []),
    'event-bus',
    ...SUBSCRIBER_NAMES.flatMap((service) => range(replicas).map((i) => replicaName(service, i, replicas))),
  ];
  const attempts = names.every((name) => fixed[name] !== undefined) ? 1 : 3;
  for (let attempt = 1; ; attempt++) {
    try {
      cluster ??= await clusterFor(options);
      const layout = await planLayout(options, { rootDir, dataDir, names, fixed, natsServer, cluster });
      return await runSystem(layout, cleanUp);
    } catch (err) {
      // A port picked free can be taken by someone else before the process binds it: pick again.
      const raced =
        err instanceof StartError &&
        err.service !== undefined &&
        fixed[err.service as ProcessName] === undefined &&
        err.output.some((line) => line.includes('EADDRINUSE') || line.includes('address already in use'));
      if (!raced || attempt >= attempts) {
        await cleanUp();
        throw err;
      }
    }
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** The ports asked for, by process: a service's own is its first replica's; a cluster picks its own. */
function fixedPorts(options: SystemOptions, replicas: number, natsServer: boolean) {
  const fixed: Partial<Record<ProcessName, number>> =
    options.ports === 'default'
      ? { ...DEFAULT_PORTS, nats: DEFAULT_NATS_PORT }
      : { ...(options.ports ?? {}) };
  if (!natsServer) delete fixed.nats;
  if (replicas > 1) {
    for (const service of SUBSCRIBER_NAMES) {
      fixed[replicaName(service, 0, replicas)] ??= fixed[service];
      delete fixed[service];
    }
  }
  return fixed;
}

/** Throws a StartError if the services are not built or an option cannot work; the nats-server to run. */
function checkStartable(options: SystemOptions, rootDir: string): string | undefined {
  const missing = SERVICE_NAMES.filter((name) => !existsSync(path.join(rootDir, name, 'dist', 'index.js')));
  if (missing.length) {
    throw new StartError(
      `Not built: ${missing.map((name) => `${name}/dist/index.js`).join(', ')}. Run \`npm run build\` first.`,
    );
  }
  if (options.eventBusToken !== undefined && !TOKEN_PATTERN.test(options.eventBusToken)) {
    throw new StartError(
      'EVENT_BUS_TOKEN (value not shown) must be at least 16 characters of A-Z a-z 0-9 - . _ ~ + / ' +
        '(then = padding), such as the output of `openssl rand -hex 32`',
    );
  }
  checkScaleOptions(options);
  const transport = options.transport ?? 'http';
  if (transport !== 'nats' || options.natsUrl !== undefined) return undefined;
  const binary = findNatsServerBinary();
  if (!binary) {
    throw new StartError(
      `The nats transport needs a nats-server, and there is none on PATH or at /usr/sbin/nats-server: ` +
        `${NATS_INSTALL_HINT}.`,
    );
  }
  // A cluster's nodes are started by startNatsCluster, before the layout.
  return (options.natsNodes ?? 1) > 1 ? undefined : binary;
}

/** Checks the fixed ports are free, picks the others, and names every URL. */
async function planLayout(
  options: SystemOptions,
  plan: {
    rootDir: string;
    dataDir: string;
    names: ProcessName[];
    fixed: Partial<Record<ProcessName, number>>;
    natsServer: string | undefined;
    cluster: NatsCluster | undefined;
  },
): Promise<SystemLayout> {
  const { rootDir, dataDir, names, fixed, natsServer, cluster } = plan;
  const routerPort = routerPortOf(options);
  await assertPortsFree({ ...fixed, ...(routerPort ? { router: routerPort } : {}) });
  const toPick = names.filter((name) => fixed[name] === undefined);
  const picked = await freePorts(toPick.length);
  const ports = { ...fixed };
  toPick.forEach((name, i) => (ports[name] = picked[i]!));

  const host = options.host ?? 'localhost';
  const replicaCount = options.replicas ?? 1;
  const replicas = Object.fromEntries(
    SUBSCRIBER_NAMES.map((service) => [
      service,
      range(replicaCount).map((i): Replica => {
        const name = replicaName(service, i, replicaCount);
        return { name, port: ports[name]!, url: `http://${host}:${ports[name]}` };
      }),
    ]),
  ) as Record<SubscriberName, Replica[]>;
  const urls = Object.fromEntries(
    SERVICE_NAMES.map((n) => [n, n === 'event-bus' ? `http://${host}:${ports[n]}` : replicas[n][0]!.url]),
  ) as Record<ServiceName, string>;
  const transport = options.transport ?? 'http';
  return {
    options,
    rootDir,
    dataDir,
    natsDir: path.join(dataDir, 'nats'),
    natsServer,
    names,
    ports,
    urls,
    replicas,
    host,
    transport,
    nats: transport === 'nats' ? natsOf(options, natsServer, cluster, ports.nats) : undefined,
    cluster,
    readyTimeoutMs: options.readyTimeoutMs ?? 60_000,
    stopTimeoutMs: options.stopTimeoutMs ?? 10_000,
    status: options.onStatus ?? ((message: string) => process.stderr.write(`${message}\n`)),
  };
}

/** The servers the services are given: a cluster's nodes, startSystem's own nats-server, or `natsUrl`. */
function natsOf(
  options: SystemOptions,
  natsServer: string | undefined,
  cluster: NatsCluster | undefined,
  port: number | undefined,
): NonNullable<SystemLayout['nats']> {
  const ours = !!natsServer || !!cluster;
  const stream = options.natsStream ?? (ours ? 'blog' : uniqueStreamName('blog'));
  if (cluster) return { url: cluster.url, stream, ours, nodes: cluster.nodes.map((_, i) => natsNodeName(i)) };
  // The nats-server listens on 127.0.0.1 only: no name to resolve, and nothing reachable from elsewhere.
  if (natsServer) return { url: `nats://127.0.0.1:${port}`, stream, ours, nodes: ['nats'] };
  return { url: options.natsUrl!, stream, ours, nodes: [] };
}
