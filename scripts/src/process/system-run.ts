import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { removeNatsTokenFile, waitForNats } from '@blog/common/nats-server';
import { localBackends, startRouter, type Router } from '@blog/router';
import { type ManagedProcess, StartError, waitForReady } from '@blog/common/process';
import { LOOPBACK, SUBSCRIBER_NAMES, type ProcessName, type SubscriberName } from './names.js';
import { freePorts } from './ports.js';
import { clusterNodeProcess, natsNodeName } from './system-cluster.js';
import {
  routerPortOf,
  systemProcess,
  typescriptWatcher,
  viteDevServer,
  type ControlledProcess,
  type SystemLayout,
  type SystemProcess,
} from './system-processes.js';
import type { Replica, System } from './system-types.js';

/** Pauses and resumes: `kill` sends them without waiting for an exit, nor dropping a scheduled restart. */
const PAUSE_SIGNALS: ReadonlySet<NodeJS.Signals> = new Set(['SIGSTOP', 'SIGCONT', 'SIGTSTP']);

/**
 * Spawns the system laid out in `layout` (the nats-server, the bus, then the subscribers at once, then the
 * router) and waits until each is ready. A failed start stops what was started and keeps the data
 * directory (and the cluster): startSystem decides whether to retry in it. `cleanUp` runs once `stop()` is
 * done with the processes.
 */
export async function runSystem(layout: SystemLayout, cleanUp: () => Promise<void>): Promise<System> {
  let stopping: Promise<void> | undefined;
  let startedAll = false;
  const supervising = () => startedAll && !stopping;
  if (layout.natsServer) mkdirSync(layout.natsDir, { recursive: true });
  const procs = new Map(layout.names.map((name) => [name, systemProcess(layout, name, supervising)]));
  const helpers: ManagedProcess[] = [];
  if (layout.options.dev) {
    const tsc = typescriptWatcher(layout);
    helpers.push(tsc);
    tsc.spawn();
  }
  let router: Router | undefined;
  try {
    await startProcesses(procs);
    router = await startRouterFor(layout, helpers);
    startedAll = true;
  } catch (err) {
    await Promise.all(helpers.map((helper) => helper.kill()));
    await stopProcesses(layout, procs, 2000);
    throw err;
  }
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await router?.close();
      await Promise.all([
        ...helpers.map((helper) => helper.stop(layout.stopTimeoutMs)),
        stopProcesses(layout, procs, layout.stopTimeoutMs),
      ]);
      await cleanUp();
    })();
    return stopping;
  };
  const addReplica = async (service: SubscriberName): Promise<Replica> => {
    if (stopping) throw new Error('The system is stopped');
    if (layout.transport !== 'nats') {
      throw new Error(
        'One more replica needs transport nats: the HTTP bus delivers to one address per subscriber',
      );
    }
    const replicas = layout.replicas[service];
    const name: ProcessName = `${service}-${replicas.length}`;
    const [port] = await freePorts(1);
    const replica: Replica = { name, port: port!, url: `http://${layout.host}:${port}` };
    layout.ports[name] = port;
    replicas.push(replica);
    layout.names.push(name);
    const proc = systemProcess(layout, name, supervising);
    procs.set(name, proc);
    await proc.process.start();
    return replica;
  };
  return systemHandle(layout, procs, router, { stop, addReplica, stopped: () => !!stopping });
}

async function startProcesses(procs: Map<ProcessName, SystemProcess>): Promise<void> {
  await procs.get('nats')?.process.start();
  await procs.get('event-bus')!.process.start();
  const subscribers = [...procs.values()].filter(({ name }) => name !== 'nats' && name !== 'event-bus');
  for (const { process } of subscribers) process.spawn();
  await Promise.all(subscribers.map(({ process }) => process.waitReady()));
}

/** The services first, the nats-server last, so that no service is left waiting on it while it shuts down. */
async function stopProcesses(
  layout: SystemLayout,
  procs: Map<ProcessName, SystemProcess>,
  timeoutMs: number,
): Promise<void> {
  const terminate = (proc: SystemProcess) => {
    proc.cancelRestart();
    return proc.process.stop(timeoutMs);
  };
  await Promise.all([...procs.values()].filter(({ name }) => name !== 'nats').map(terminate));
  const nats = procs.get('nats');
  if (!nats) return;
  await terminate(nats);
  removeNatsTokenFile(layout.natsDir);
}

/**
 * The local router, when asked for, routing as the Ingress says. Under `dev`, Vite serves the client (with
 * hot reload) and the router sends client-srv to it.
 */
async function startRouterFor(layout: SystemLayout, helpers: ManagedProcess[]): Promise<Router | undefined> {
  const { options, rootDir } = layout;
  const routerOptions = options.router === true ? {} : options.router || undefined;
  if (!routerOptions) return undefined;
  let viteUrl: string | undefined;
  if (options.dev) {
    const [port] = await freePorts(1);
    const vite = viteDevServer(layout, port!);
    helpers.push(vite);
    await vite.start();
    viteUrl = `http://${LOOPBACK}:${port}`;
  }
  const routerPort = routerPortOf(options);
  return startRouter({
    ingressFile: routerOptions.ingressFile ?? path.join(rootDir, 'infra', 'k8s', 'ingress-srv.yaml'),
    backends: localBackends(
      layout.urls,
      viteUrl ?? { dir: routerOptions.clientDir ?? path.join(rootDir, 'client', 'dist') },
    ),
    port: routerPort ?? 0,
    host: routerOptions.host ?? LOOPBACK,
  }).catch((err: NodeJS.ErrnoException) => {
    const message = err.code === 'EADDRINUSE' ? `port ${routerPort} is already in use` : err.message;
    throw new StartError(`The router could not start: ${message}`, 'router');
  });
}

function systemHandle(
  layout: SystemLayout,
  procs: Map<ProcessName, SystemProcess>,
  router: Router | undefined,
  control: { stop: () => Promise<void>; addReplica: System['addReplica']; stopped: () => boolean },
): System {
  const { nats, cluster } = layout;
  const nodes = new Map(
    (cluster?.nodes ?? []).map((node, i) => [natsNodeName(i), clusterNodeProcess(node, natsNodeName(i))]),
  );
  const procOf = (name: ProcessName): ControlledProcess => {
    const proc = procs.get(name) ?? nodes.get(name) ?? procs.get(firstOf(name)) ?? nodes.get(firstOf(name));
    if (proc) return proc;
    if (name !== 'nats' && !name.startsWith('nats-'))
      throw new Error(`No process of this system is named ${name}`);
    throw new Error(
      nats
        ? `The NATS server at ${nats.url} was not started by startSystem: it cannot be killed or restarted`
        : 'There is no nats-server: this system runs on the HTTP bus (transport http)',
    );
  };
  const ports = Object.fromEntries(
    Object.entries(layout.urls).map(([service, url]) => [service, Number(new URL(url).port)]),
  ) as System['ports'];
  return {
    urls: layout.urls,
    ports,
    replicas: layout.replicas,
    dataDir: layout.dataDir,
    transport: layout.transport,
    nats,
    router: router && { url: router.url, port: router.port },
    stop: control.stop,
    addReplica: control.addReplica,
    async kill(name, signal = 'SIGKILL') {
      const proc = procOf(name);
      if (proc.process.running && !PAUSE_SIGNALS.has(signal)) proc.cancelRestart();
      return proc.process.kill(signal);
    },
    async restart(name) {
      if (control.stopped()) throw new Error('The system is stopped');
      const proc = procOf(name);
      proc.cancelRestart();
      await proc.process.restart();
    },
    waitReady(name, timeoutMs = layout.readyTimeoutMs) {
      if (name === 'nats' && !cluster) return waitForNats(nats?.url ?? procOf(name).url, { timeoutMs });
      if (name.startsWith('nats')) return waitForNats(procOf(name).url, { timeoutMs });
      return waitForReady(procOf(name).url, { timeoutMs });
    },
    logs: (name) => procOf(name).process.logs(),
    status: () =>
      [...nodes.keys(), ...layout.names].map((name) => {
        const { port, url, process } = procOf(name);
        return { name, port, url, pid: process.pid, running: process.running, restarts: process.restarts };
      }),
  };
}

/** The bare name of a service or of NATS stands for its first process (`query-0`, `nats-0`). */
const firstOf = (name: ProcessName): ProcessName =>
  (SUBSCRIBER_NAMES as readonly string[]).includes(name) || name === 'nats'
    ? (`${name}-0` as ProcessName)
    : name;
