import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { removeNatsTokenFile, waitForNats } from '@blog/common/nats-server';
import { localBackends, startRouter, type Router } from '@blog/router';
import { type ManagedProcess, StartError, waitForReady } from '@blog/common/process';
import { LOOPBACK, SERVICE_NAMES, SUBSCRIBER_NAMES, type ProcessName } from './names.js';
import { freePorts } from './ports.js';
import {
  routerPortOf,
  systemProcess,
  typescriptWatcher,
  viteDevServer,
  type SystemLayout,
  type SystemProcess,
} from './system-processes.js';
import type { System } from './system-types.js';

/** Pauses and resumes: `kill` sends them without waiting for an exit, nor dropping a scheduled restart. */
const PAUSE_SIGNALS: ReadonlySet<NodeJS.Signals> = new Set(['SIGSTOP', 'SIGCONT', 'SIGTSTP']);

/**
 * Spawns the system laid out in `layout` (the nats-server, the bus, then the subscribers at once, then the
 * router) and waits until each is ready. A failed start stops what was started and keeps the data
 * directory: startSystem decides whether to retry in it. `removeDataDir` runs once `stop()` is done.
 */
export async function runSystem(layout: SystemLayout, removeDataDir: () => void): Promise<System> {
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
      removeDataDir();
    })();
    return stopping;
  };
  return systemHandle(layout, procs, router, stop, () => !!stopping);
}

async function startProcesses(procs: Map<ProcessName, SystemProcess>): Promise<void> {
  await procs.get('nats')?.process.start();
  await procs.get('event-bus')!.process.start();
  for (const name of SUBSCRIBER_NAMES) procs.get(name)!.process.spawn();
  await Promise.all(SUBSCRIBER_NAMES.map((name) => procs.get(name)!.process.waitReady()));
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
  await Promise.all(SERVICE_NAMES.map((name) => terminate(procs.get(name)!)));
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
  stop: () => Promise<void>,
  stopped: () => boolean,
): System {
  const { nats } = layout;
  const procOf = (name: ProcessName): SystemProcess => {
    const proc = procs.get(name);
    if (proc) return proc;
    throw new Error(
      nats
        ? `The NATS server at ${nats.url} was not started by startSystem: it cannot be killed or restarted`
        : 'There is no nats-server: this system runs on the HTTP bus (transport http)',
    );
  };
  return {
    urls: layout.urls,
    ports: layout.ports,
    dataDir: layout.dataDir,
    transport: layout.transport,
    nats,
    router: router && { url: router.url, port: router.port },
    stop,
    async kill(name, signal = 'SIGKILL') {
      const proc = procOf(name);
      if (proc.process.running && !PAUSE_SIGNALS.has(signal)) proc.cancelRestart();
      return proc.process.kill(signal);
    },
    async restart(name) {
      if (stopped()) throw new Error('The system is stopped');
      const proc = procOf(name);
      proc.cancelRestart();
      await proc.process.restart();
    },
    waitReady(name, timeoutMs = layout.readyTimeoutMs) {
      if (name === 'nats') return waitForNats(nats?.url ?? procOf(name).url, { timeoutMs });
      return waitForReady(procOf(name).url, { timeoutMs });
    },
    logs: (name) => procOf(name).process.logs(),
    status: () =>
      layout.names.map((name) => {
        const { port, url, process } = procOf(name);
        return { name, port, url, pid: process.pid, running: process.running, restarts: process.restarts };
      }),
  };
}
