import { createRequire } from 'node:module';
import path from 'node:path';
import { natsGreets, natsServerArgs } from '@blog/common/nats-server';
import { formatServiceLine, painter } from '../logs.js';
import { describeExit, type ExitInfo, ManagedProcess, type OutputStream } from '@blog/common/process';
import type { NatsCluster } from '@blog/common/nats-cluster';
import {
  DEFAULT_ROUTER_PORT,
  LOOPBACK,
  SUBSCRIBER_NAMES,
  type ProcessName,
  type ServiceName,
  type SubscriberName,
  type Transport,
} from './names.js';
import type { Replica, SystemOptions } from './system-types.js';

/** Where one system's processes run and how they find each other, decided before any is spawned. */
export interface SystemLayout {
  options: SystemOptions;
  rootDir: string;
  dataDir: string;
  /** The nats-server's store, `<dataDir>/nats`. */
  natsDir: string;
  /** The nats-server binary startSystem runs, or undefined: transport http, or a server given by `natsUrl`. */
  natsServer: string | undefined;
  /** The processes spawned here (a cluster's nodes aside), in start order; `addReplica` adds to them. */
  names: ProcessName[];
  /** Each process's port, by name. */
  ports: Partial<Record<ProcessName, number>>;
  /** The services' first replicas. */
  urls: Record<ServiceName, string>;
  replicas: Record<SubscriberName, Replica[]>;
  /** The host name in the URLs. */
  host: string;
  transport: Transport;
  nats: { url: string; stream: string; ours: boolean; nodes: ProcessName[] } | undefined;
  /** The JetStream cluster startSystem runs (`natsNodes` above 1), started before the services. */
  cluster: NatsCluster | undefined;
  readyTimeoutMs: number;
  stopTimeoutMs: number;
  status: (message: string) => void;
}

/** What `kill`, `restart`, `logs` and `status` need of a process, spawned here or a cluster's node. */
export interface ControlledProcess {
  name: ProcessName;
  port: number;
  url: string;
  process: Pick<ManagedProcess, 'pid' | 'running' | 'restarts' | 'kill' | 'restart' | 'logs'>;
  /** Drops a restart scheduled after a crash (before `stop`, `kill` or `restart`). */
  cancelRestart(): void;
}

/** One of the processes spawned here, and the restart a crash may have scheduled. */
export interface SystemProcess extends ControlledProcess {
  process: ManagedProcess;
}

const require = createRequire(import.meta.url);

/** Prints a process's lines (unless `quiet`) and hands them to `onLine`. */
export function linePrinter(
  options: SystemOptions,
  name: string,
): (line: string, stream: OutputStream) => void {
  const paint = painter(process.stdout);
  return (line, stream) => {
    options.onLine?.(name, line, stream);
    if (options.quiet) return;
    // The nats-server logs everything on stderr: only its errors are shown as such.
    const error = name === 'nats' ? /\[(ERR|FTL)\]/.test(line) : stream === 'stderr';
    process.stdout.write(`${formatServiceLine(name, line, { paint, stderr: error })}\n`);
  };
}

/** The service a process runs: `query` for `query` and `query-1`. */
export function serviceOf(layout: SystemLayout, name: ProcessName): ServiceName {
  if (name === 'event-bus') return name;
  const service = SUBSCRIBER_NAMES.find((s) => layout.replicas[s].some((replica) => replica.name === name));
  if (!service) throw new Error(`No process of this system is named ${name}`);
  return service;
}

function serviceEnv(layout: SystemLayout, name: ProcessName): NodeJS.ProcessEnv {
  const { options, urls, nats } = layout;
  const service = serviceOf(layout, name);
  // EVENT_TRANSPORT always: one set in the shell (`EVENT_TRANSPORT=nats npm test`) must not leak in.
  const own: NodeJS.ProcessEnv = {
    PORT: String(layout.ports[name]),
    HOST: LOOPBACK,
    EVENT_TRANSPORT: layout.transport,
    // Empty is unset (common/src/config.ts).
    EVENT_BUS_TOKEN: options.eventBusToken ?? '',
  };
  // A replica's name tells it apart (as a pod's name does in Kubernetes); a lone service keeps the shell's.
  if (name !== service) own.HOSTNAME = name;
  if (name === 'event-bus') {
    own.DATA_DIR = layout.dataDir;
    own.SUBSCRIBERS = SUBSCRIBER_NAMES.map((n) => `${n}=${urls[n]}/events`).join(',');
  } else {
    own.EVENT_BUS_URL = urls['event-bus'];
  }
  if (nats) Object.assign(own, { NATS_URL: nats.url, NATS_STREAM: nats.stream });
  if (layout.cluster) own.NATS_REPLICAS = String(Math.min(3, layout.cluster.nodes.length));
  return { ...process.env, ...own, ...options.env, ...options.serviceEnv?.[service] };
}

/** `node dist/index.js` in the service's folder; under `dev`, nodemon restarting it on every rebuild. */
function serviceArgs(options: SystemOptions): string[] {
  if (!options.dev) return ['dist/index.js'];
  return [
    require.resolve('nodemon/bin/nodemon.js'),
    '--quiet',
    ...(process.stdout.isTTY ? [] : ['--no-colours']),
    ...['--watch', 'dist', '--watch', '../common/dist', '--ext', 'js', '--delay', '0.5'],
    'dist/index.js',
  ];
}

/**
 * The nats-server with JetStream, stored in `<dataDir>/nats` so a restart (or the next run) finds it all;
 * with a token, it serves only the clients that present it. Its URL, or one of a service.
 */
function commandOf(layout: SystemLayout, name: ProcessName) {
  if (name === 'nats') {
    const url = layout.nats!.url;
    return {
      url,
      command: layout.natsServer!,
      args: natsServerArgs({
        port: layout.ports.nats!,
        storeDir: layout.natsDir,
        token: layout.options.eventBusToken,
      }),
      cwd: layout.dataDir,
      env: { ...process.env },
      ready: ({ timeoutMs }: { timeoutMs: number }) => natsGreets(url, timeoutMs),
    };
  }
  const url = `http://${layout.host}:${layout.ports[name]}`;
  return {
    url,
    command: process.execPath,
    args: serviceArgs(layout.options),
    cwd: path.join(layout.rootDir, serviceOf(layout, name)),
    env: serviceEnv(layout, name),
    ready: `${url}/readyz`,
  };
}

/**
 * One process of the system. Once `supervising()` (started, not stopping), an exit nobody asked for is a
 * crash: reported, and under `autoRestart` followed by a restart, like a Deployment.
 */
export function systemProcess(
  layout: SystemLayout,
  name: ProcessName,
  supervising: () => boolean,
): SystemProcess {
  const { url, ...command } = commandOf(layout, name);
  const crashes = { delayMs: 1000, timer: undefined as NodeJS.Timeout | undefined };
  const managed: ManagedProcess = new ManagedProcess({
    name,
    ...command,
    readyTimeoutMs: layout.readyTimeoutMs,
    stopTimeoutMs: layout.stopTimeoutMs,
    onLine: linePrinter(layout.options, name),
    onStatus: layout.status,
    signal: layout.options.signal,
    onExit: (exit, unexpected) => {
      if (unexpected && supervising()) onCrash(layout, managed, url, exit, crashes);
    },
  });
  return {
    name,
    port: layout.ports[name]!,
    url,
    process: managed,
    cancelRestart() {
      clearTimeout(crashes.timer);
      crashes.timer = undefined;
    },
  };
}

function onCrash(
  layout: SystemLayout,
  managed: ManagedProcess,
  url: string,
  exit: ExitInfo,
  crashes: { delayMs: number; timer: NodeJS.Timeout | undefined },
): void {
  // Back after 1 s; one that keeps dying right away waits twice as long each time.
  const quickCrash = Date.now() - (managed.startedAt ?? 0) < 10_000;
  const wait = quickCrash ? crashes.delayMs : 1000;
  crashes.delayMs = quickCrash ? Math.min(wait * 2, 30_000) : 2000;
  const { name } = managed;
  if (!layout.options.autoRestart) {
    layout.status(`✖ ${name} exited unexpectedly (${describeExit(exit)})`);
    return;
  }
  layout.status(`✖ ${name} exited unexpectedly (${describeExit(exit)}); restarting in ${wait / 1000} s`);
  crashes.timer = setTimeout(() => {
    crashes.timer = undefined;
    managed.start().then(
      () => layout.status(`✔ ${name} is ready again at ${url} (restart #${managed.restarts})`),
      (err: Error) => layout.status(`✖ ${name} did not come back: ${err.message}`),
    );
  }, wait);
}

/** Under `dev`: one compiler for everything; each nodemon restarts its service when its output changes. */
export function typescriptWatcher(layout: SystemLayout): ManagedProcess {
  return new ManagedProcess({
    name: 'tsc',
    command: process.execPath,
    args: [require.resolve('typescript/bin/tsc'), '-b', '--watch', '--preserveWatchOutput'],
    cwd: layout.rootDir,
    onLine: linePrinter(layout.options, 'tsc'),
  });
}

/** `npm run dev`'s client: Vite's dev server on `port`, ready once it answers `/`. */
export function viteDevServer(layout: SystemLayout, port: number): ManagedProcess {
  const vite = path.join(path.dirname(require.resolve('vite/package.json')), 'bin', 'vite.js');
  return new ManagedProcess({
    name: 'vite',
    command: process.execPath,
    args: [vite, '--port', String(port), '--strictPort', '--host', LOOPBACK],
    cwd: path.join(layout.rootDir, 'client'),
    ready: `http://${LOOPBACK}:${port}/`,
    readyTimeoutMs: layout.readyTimeoutMs,
    signal: layout.options.signal,
    onLine: linePrinter(layout.options, 'vite'),
  });
}

/** The router's port when one is asked for: its own, 3000 under `ports: 'default'`, or undefined (free). */
export function routerPortOf(options: SystemOptions): number | undefined {
  const router = options.router === true ? {} : options.router || undefined;
  if (!router) return undefined;
  return router.port ?? (options.ports === 'default' ? DEFAULT_ROUTER_PORT : undefined);
}
