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
 * Import it from `scripts/src/processes.ts` in vitest and from `scripts/dist/processes.js` in node. Each
 * service is `node <service>/dist/index.js` (run `npm run build` first), listening on 127.0.0.1 only (HOST),
 * configured by PORT, EVENT_TRANSPORT,
 * EVENT_BUS_URL, SUBSCRIBERS and DATA_DIR (or, with `transport: 'nats'`, NATS_URL and NATS_STREAM), and
 * counts as started when `GET /readyz` answers 200; the nats-server when it greets a client (`INFO`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { TOKEN_PATTERN } from '@blog/common';
import {
  findNatsServerBinary,
  natsTokenArgs,
  removeNatsTokenFile,
  uniqueStreamName,
} from '@blog/common/testing';
import { localBackends, startRouter, type Router } from '@blog/router';
import { formatServiceLine, LineSplitter, painter } from './logs.js';

/** In start order: the bus first, since every other service catches up from it. */
export const SERVICE_NAMES = ['event-bus', 'posts', 'comments', 'query', 'moderation'] as const;
export type ServiceName = (typeof SERVICE_NAMES)[number];
export const SUBSCRIBER_NAMES = ['posts', 'comments', 'query', 'moderation'] as const satisfies ServiceName[];

/** The course's ports. */
export const DEFAULT_PORTS: Readonly<Record<ServiceName, number>> = {
  posts: 4000,
  comments: 4001,
  query: 4002,
  moderation: 4003,
  'event-bus': 4005,
};

/** The local router's port under `ports: 'default'`: the client's, where the Ingress's address stands. */
export const DEFAULT_ROUTER_PORT = 3000;

/**
 * Where every process listens (the services' HOST, the router, the nats-server): the loopback address, so
 * nothing on the network reaches them. Only the router may be exposed elsewhere (`router.host`).
 */
export const LOOPBACK = '127.0.0.1';

/** How the services exchange events (docs/event-bus.md): the HTTP bus, or NATS JetStream. */
export const TRANSPORTS = ['http', 'nats'] as const;
export type Transport = (typeof TRANSPORTS)[number];

/**
 * The transport options of `npm start`, `npm run chaos` and `npm run bench`: `--transport`, else
 * EVENT_TRANSPORT, else http; with nats, a server already running at NATS_URL (else startSystem runs one)
 * and the stream NATS_STREAM, when set.
 */
export function transportOptions(
  flag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Pick<SystemOptions, 'transport' | 'natsUrl' | 'natsStream'> {
  const value = flag ?? (env.EVENT_TRANSPORT || 'http');
  if (value === 'http') return { transport: 'http' };
  if (value !== 'nats') {
    throw new Error(`--transport (or EVENT_TRANSPORT) is "http" or "nats", not "${value}"`);
  }
  return { transport: 'nats', natsUrl: env.NATS_URL || undefined, natsStream: env.NATS_STREAM || undefined };
}

/** What startSystem runs: the five services, and with `transport: 'nats'` its own nats-server. */
export type ProcessName = ServiceName | 'nats';

/** NATS's own port, the nats-server's under `ports: 'default'`. */
export const DEFAULT_NATS_PORT = 4222;

/** How to get a nats-server, for the messages that need one. */
export const NATS_INSTALL_HINT =
  'install it with `apt-get install nats-server` (Debian, Ubuntu) or `brew install nats-server` (macOS), ' +
  'or give the URL of a running one in NATS_URL';

/** The repository root (this file is `scripts/src/processes.ts` or `scripts/dist/processes.js`). */
export const ROOT_DIR = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SystemOptions {
  /**
   * `'default'`: the course ports (4000-4003, 4005; the nats-server on 4222), checked free before anything
   * is spawned. An object: those ports for those processes, a free port for the others. Left out: free ports.
   */
  ports?: 'default' | Partial<Record<ProcessName, number>>;
  /** The bus's DATA_DIR (and the nats-server's store, `<dataDir>/nats`). Left out: a fresh temporary
   * directory, removed by `stop()`. */
  dataDir?: string;
  /** `EVENT_TRANSPORT` of every service and the bus. Default `http`. */
  transport?: Transport;
  /**
   * Transport `nats`: the URL of a NATS server already running, used as it is (it cannot be killed or
   * restarted). Left out: startSystem runs `nats-server -js` itself, on 127.0.0.1, stored in `<dataDir>/nats`.
   */
  natsUrl?: string;
  /**
   * Transport `nats`: the JetStream stream (`NATS_STREAM`). Default `blog` on startSystem's own nats-server;
   * on a server given by `natsUrl`, a fresh `blog_<random>` so that runs sharing the server do not mix.
   */
  natsStream?: string;
  /**
   * EVENT_BUS_TOKEN of every service and the bus: the event path then needs it (docs/event-bus.md). Left
   * out: none, whatever the shell running this has set (as EVENT_TRANSPORT, it must not leak in).
   */
  eventBusToken?: string;
  /** Added to every service's environment (e.g. `{ LOG_LEVEL: 'warn' }`); wins over what startSystem sets. */
  env?: NodeJS.ProcessEnv;
  /** Added to one service's environment; wins over `env`. */
  serviceEnv?: Partial<Record<ServiceName, NodeJS.ProcessEnv>>;
  /** Do not print the services' log lines (they are still kept: see `logs(name)`). Default false. */
  quiet?: boolean;
  /** Run each service under nodemon, restarted whenever `tsc -b --watch` rebuilds it or common. */
  dev?: boolean;
  /** Restart a service that dies on its own (not by `kill`) after 1 s, like a Deployment. Default false. */
  autoRestart?: boolean;
  /** How long each service may take to answer `GET /readyz` 200. Default 60 s. */
  readyTimeoutMs?: number;
  /** How long `stop()` waits after SIGTERM before SIGKILL. Default 10 s. */
  stopTimeoutMs?: number;
  /** The host name in the URLs handed to the services and returned in `urls`. Default `localhost`. */
  host?: string;
  /** Every line a service writes, as written. */
  onLine?: (name: string, line: string, stream: 'stdout' | 'stderr') => void;
  /** What happens to the processes (died, restarting, ready again). Default: printed on stderr. */
  onStatus?: (message: string) => void;
  /** Aborting it during the start stops what was started and rejects. */
  signal?: AbortSignal;
  /** The repository root holding `<service>/dist/index.js`. Default: the one this file is in. */
  rootDir?: string;
  /**
   * Also start the local router (router.ts) once the services are ready, routing as the Ingress says:
   * on 3000 under `ports: 'default'`, else on `port` or a free one, listening on `host` (default 127.0.0.1:
   * `0.0.0.0` exposes the app, and only the app, to the network). The client is `client/dist`, or under
   * `dev` Vite's dev server (hot reload) behind the same router.
   */
  router?: boolean | { port?: number; host?: string; ingressFile?: string; clientDir?: string };
}

export interface ServiceStatus {
  name: ProcessName;
  port: number;
  url: string;
  pid: number | undefined;
  running: boolean;
  restarts: number;
}

export interface System {
  /** `http://localhost:<port>` of each service, without a trailing slash. */
  urls: Readonly<Record<ServiceName, string>>;
  ports: Readonly<Record<ServiceName, number>>;
  dataDir: string;
  transport: Transport;
  /** Transport `nats`: the server (`NATS_URL`), the stream (`NATS_STREAM`), and whether startSystem runs
   * that nats-server (then `kill('nats')` and `restart('nats')` work on it). */
  nats?: { url: string; stream: string; ours: boolean };
  /** SIGTERM to all, wait for them to exit (SIGKILL after `stopTimeoutMs`). Safe to call twice. */
  stop(): Promise<void>;
  /**
   * Sends a signal to one service, or to the nats-server startSystem runs (default SIGKILL), and waits for
   * it to exit; it stays down until `restart`. SIGSTOP / SIGCONT pause and resume it instead (no waiting).
   */
  kill(name: ProcessName, signal?: NodeJS.Signals): Promise<ExitInfo | undefined>;
  /** Stops the process if it runs (SIGTERM), starts it again on the same port and waits until it is ready. */
  restart(name: ProcessName): Promise<void>;
  /** Waits until the service answers `GET /readyz` 200 (the nats-server: greets a client). */
  waitReady(name: ProcessName, timeoutMs?: number): Promise<void>;
  /** The last lines (up to 1000) the process wrote, stdout and stderr interleaved. */
  logs(name: ProcessName): string[];
  /** The five services, then the nats-server when startSystem runs one. */
  status(): ServiceStatus[];
  /** The local router, when started (`router` option): the one address of the app and its API. */
  router?: { url: string; port: number };
}

/** A start that failed: which service, and the end of what it wrote. */
export class StartError extends Error {
  override name = 'StartError';
  constructor(
    message: string,
    readonly service?: string,
    readonly output: string[] = [],
  ) {
    super(output.length ? `${message}\n  ${output.slice(-20).join('\n  ')}` : message);
  }
}

const LOG_LINES_KEPT = 1000;
const POLL_MS = 150;

// ---------------------------------------------------------------------------------------------- ports

function listenOnce(port: number, host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => resolve(server));
  });
}

function closeQuietly(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Binds like the services do: on `::` (every address, IPv4 too), or `0.0.0.0` where IPv6 is off. */
async function bindAny(port: number): Promise<net.Server> {
  try {
    return await listenOnce(port, '::');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL') return listenOnce(port, '0.0.0.0');
    throw err;
  }
}

/** Whether nothing listens on the port (on any address). */
export async function isPortFree(port: number): Promise<boolean> {
  try {
    await closeQuietly(await bindAny(port));
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') return false;
    throw err;
  }
}

/** `count` distinct ports that are free right now (children cannot be told "port 0", so we pick). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await bindAny(0));
    return servers.map((server) => (server.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map(closeQuietly));
  }
}

/** Throws a StartError naming every service whose port is taken. */
export async function assertPortsFree(ports: Partial<Record<string, number>>): Promise<void> {
  const busy: [string, number][] = [];
  for (const [name, port] of Object.entries(ports)) {
    if (port !== undefined && !(await isPortFree(port))) busy.push([name, port]);
  }
  const [first] = busy;
  if (!first) return;
  throw new StartError(
    `Port already in use: ${busy.map(([name, port]) => `${port} (${name})`).join(', ')}. Another ` +
      `\`npm start\`, \`docker compose up\` or a service started by hand may still be running: find it ` +
      `with \`ss -ltnp 'sport = :${first[1]}'\` (or \`lsof -i :${first[1]}\`), stop it, and try again.`,
  );
}

// ---------------------------------------------------------------------------------------------- readiness

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

interface PollOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Tries `attempt` (given how long it may take) every POLL_MS until it resolves. Rejects after `timeoutMs`
 * with `${failure} within N s (last: <the last attempt's error>)`, or as soon as `signal` aborts.
 */
async function pollUntil(
  failure: string,
  attempt: (attemptTimeoutMs: number) => Promise<void>,
  options: PollOptions,
): Promise<void> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer yet';
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      return await attempt(Math.max(100, Math.min(2000, deadline - Date.now())));
    } catch (err) {
      last = (err as Error).message;
    }
    if (Date.now() >= deadline) {
      throw new StartError(`${failure} within ${timeoutMs / 1000} s (last: ${last})`);
    }
    await delay(POLL_MS, options.signal);
  }
}

/**
 * Polls `GET <url>/readyz` until it answers 200. Rejects after `timeoutMs` with the last answer or error,
 * or as soon as `signal` aborts.
 */
export function waitForReady(url: string, options: PollOptions = {}): Promise<void> {
  return pollUntil(
    `${url}/readyz did not answer 200`,
    async (attemptTimeoutMs) => {
      let response: Response;
      let body: string;
      try {
        response = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(attemptTimeoutMs) });
        body = await response.text();
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        throw new Error(cause?.code ?? cause?.message ?? (err as Error).message);
      }
      if (response.status !== 200) throw new Error(`${response.status} ${body.slice(0, 200)}`);
    },
    options,
  );
}

/** One attempt: connects and resolves once the server sends its `INFO` line, as NATS greets a client. */
function natsGreets(url: URL, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: url.hostname, port: Number(url.port || DEFAULT_NATS_PORT) });
    let received = '';
    const done = (err?: Error) => {
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => done(new Error('no INFO line')));
    socket.on('error', (err: NodeJS.ErrnoException) => done(new Error(err.code ?? err.message)));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (received.startsWith('INFO ')) done();
      else if (received.length >= 5) done(new Error(`not a NATS server: ${received.slice(0, 60)}`));
    });
  });
}

/**
 * Polls `nats://host:port` until a connection is greeted with `INFO` (the nats-server accepts clients only
 * once JetStream has recovered its store). Rejects after `timeoutMs`, or as soon as `signal` aborts.
 */
export function waitForNats(natsUrl: string, options: PollOptions = {}): Promise<void> {
  const url = new URL(natsUrl);
  return pollUntil(`${natsUrl} did not greet a client`, (ms) => natsGreets(url, ms), options);
}

// ---------------------------------------------------------------------------------------------- processes

interface Proc {
  name: ProcessName;
  port: number;
  url: string;
  env: NodeJS.ProcessEnv;
  child: ChildProcess | undefined;
  exited: Promise<ExitInfo> | undefined;
  /** Should be running: an exit while true is a crash. */
  wanted: boolean;
  startedAt: number;
  restarts: number;
  crashDelayMs: number;
  restartTimer: NodeJS.Timeout | undefined;
  logs: string[];
}

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/** If this process exits without `stop()` (a failed test, an uncaught error), take the services along. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const child of liveChildren) signalTree(child, 'SIGKILL');
  });
}

/** Children run in their own process group (so Ctrl-C reaches only us): signal the whole group. */
function signalTree(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(process.platform === 'win32' ? child.pid : -child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function describeExit(exit: ExitInfo): string {
  return exit.signal ? `killed by ${exit.signal}` : `exit code ${exit.code}`;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The nats-server startSystem runs (transport `nats` without `natsUrl`): its binary. */
function natsServerOrThrow(): string {
  const binary = findNatsServerBinary();
  if (!binary) {
    throw new StartError(
      `The nats transport needs a nats-server, and there is none on PATH or at /usr/sbin/nats-server: ` +
        `${NATS_INSTALL_HINT}.`,
    );
  }
  return binary;
}

export async function startSystem(options: SystemOptions = {}): Promise<System> {
  const rootDir = options.rootDir ?? ROOT_DIR;
  const missing = SERVICE_NAMES.filter((name) => !existsSync(path.join(rootDir, name, 'dist', 'index.js')));
  if (missing.length) {
    throw new StartError(
      `Not built: ${missing.map((name) => `${name}/dist/index.js`).join(', ')}. Run \`npm run build\` first.`,
    );
  }
  const transport = options.transport ?? 'http';
  const natsServer = transport === 'nats' && options.natsUrl === undefined ? natsServerOrThrow() : undefined;
  if (options.eventBusToken !== undefined && !TOKEN_PATTERN.test(options.eventBusToken)) {
    throw new StartError(
      'EVENT_BUS_TOKEN (value not shown) must be at least 16 characters of A-Z a-z 0-9 - . _ ~ + / ' +
        '(then = padding), such as the output of `openssl rand -hex 32`',
    );
  }

  const ownDataDir = options.dataDir === undefined;
  const dataDir = path.resolve(options.dataDir ?? mkdtempSync(path.join(os.tmpdir(), 'blog-data-')));
  mkdirSync(dataDir, { recursive: true });

  const fixed: Partial<Record<ProcessName, number>> =
    options.ports === 'default'
      ? { ...DEFAULT_PORTS, nats: DEFAULT_NATS_PORT }
      : { ...(options.ports ?? {}) };
  if (!natsServer) delete fixed.nats;
  const names: ProcessName[] = natsServer ? ['nats', ...SERVICE_NAMES] : [...SERVICE_NAMES];
  const attempts = names.every((name) => fixed[name] !== undefined) ? 1 : 3;
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(options, rootDir, dataDir, ownDataDir, fixed, natsServer);
    } catch (err) {
      // A port picked free can be taken by someone else before the process binds it: pick again.
      const raced =
        err instanceof StartError &&
        err.service !== undefined &&
        fixed[err.service as ProcessName] === undefined &&
        err.output.some((line) => line.includes('EADDRINUSE') || line.includes('address already in use'));
      if (!raced || attempt >= attempts) {
        if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
        throw err;
      }
    }
  }
}

async function startOnce(
  options: SystemOptions,
  rootDir: string,
  dataDir: string,
  ownDataDir: boolean,
  fixed: Partial<Record<ProcessName, number>>,
  /** The nats-server binary to run, or undefined: transport http, or a server given by `natsUrl`. */
  natsServer: string | undefined,
): Promise<System> {
  const routerOptions = options.router === true ? {} : options.router || undefined;
  const routerPort = routerOptions?.port ?? (options.ports === 'default' ? DEFAULT_ROUTER_PORT : undefined);
  await assertPortsFree({ ...fixed, ...(routerOptions && routerPort ? { router: routerPort } : {}) });
  const names: ProcessName[] = natsServer ? ['nats', ...SERVICE_NAMES] : [...SERVICE_NAMES];
  const toPick = names.filter((name) => fixed[name] === undefined);
  const picked = await freePorts(toPick.length);
  const ports = { ...fixed } as Record<ProcessName, number>;
  toPick.forEach((name, i) => (ports[name] = picked[i]!));

  const host = options.host ?? 'localhost';
  const urls = Object.fromEntries(SERVICE_NAMES.map((n) => [n, `http://${host}:${ports[n]}`])) as Record<
    ServiceName,
    string
  >;
  const transport = options.transport ?? 'http';
  // The nats-server listens on 127.0.0.1 only: no name to resolve, and nothing reachable from elsewhere.
  const nats =
    transport === 'nats'
      ? {
          url: natsServer ? `nats://127.0.0.1:${ports.nats}` : options.natsUrl!,
          stream: options.natsStream ?? (natsServer ? 'blog' : uniqueStreamName('blog')),
          ours: !!natsServer,
        }
      : undefined;
  const readyTimeoutMs = options.readyTimeoutMs ?? 60_000;
  const stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
  const paint = painter(process.stdout);
  const status = options.onStatus ?? ((message: string) => process.stderr.write(`${message}\n`));
  const require = createRequire(import.meta.url);

  const envFor = (name: ProcessName): NodeJS.ProcessEnv => {
    if (name === 'nats') return { ...process.env };
    // EVENT_TRANSPORT always: one set in the shell (`EVENT_TRANSPORT=nats npm test`) must not leak in.
    const own: NodeJS.ProcessEnv = {
      PORT: String(ports[name]),
      HOST: LOOPBACK,
      EVENT_TRANSPORT: transport,
      // Empty is unset (common/src/config.ts).
      EVENT_BUS_TOKEN: options.eventBusToken ?? '',
    };
    if (name === 'event-bus') {
      own.DATA_DIR = dataDir;
      own.SUBSCRIBERS = SUBSCRIBER_NAMES.map((n) => `${n}=${urls[n]}/events`).join(',');
    } else {
      own.EVENT_BUS_URL = urls['event-bus'];
    }
    if (nats) Object.assign(own, { NATS_URL: nats.url, NATS_STREAM: nats.stream });
    return { ...process.env, ...own, ...options.env, ...options.serviceEnv?.[name] };
  };

  const procs = Object.fromEntries(
    names.map((name): [ProcessName, Proc] => [
      name,
      {
        name,
        port: ports[name],
        url: name === 'nats' ? nats!.url : urls[name],
        env: envFor(name),
        child: undefined,
        exited: undefined,
        wanted: false,
        startedAt: 0,
        restarts: 0,
        crashDelayMs: 1000,
        restartTimer: undefined,
        logs: [],
      },
    ]),
  ) as Record<ServiceName, Proc> & { nats?: Proc };
  const procOf = (name: ProcessName): Proc => {
    const proc = procs[name];
    if (proc) return proc;
    throw new Error(
      nats
        ? `The NATS server at ${nats.url} was not started by startSystem: it cannot be killed or restarted`
        : 'There is no nats-server: this system runs on the HTTP bus (transport http)',
    );
  };

  let stopping: Promise<void> | undefined;
  let startedAll = false;
  let router: Router | undefined;
  const helpers: ChildProcess[] = [];
  installExitHook();

  const print = (name: string, line: string, stream: 'stdout' | 'stderr') => {
    options.onLine?.(name, line, stream);
    if (!options.quiet) {
      // The nats-server logs everything on stderr: only its errors are shown as such.
      const error = name === 'nats' ? /\[(ERR|FTL)\]/.test(line) : stream === 'stderr';
      process.stdout.write(`${formatServiceLine(name, line, { paint, stderr: error })}\n`);
    }
  };

  const pipeLines = (child: ChildProcess, name: string, keep?: string[]) => {
    for (const stream of ['stdout', 'stderr'] as const) {
      const splitter = new LineSplitter((line) => {
        if (keep) {
          keep.push(line);
          if (keep.length > LOG_LINES_KEPT) keep.splice(0, keep.length - LOG_LINES_KEPT);
        }
        print(name, line, stream);
      });
      child[stream]?.on('data', (chunk: Buffer) => splitter.push(chunk));
      child[stream]?.on('end', () => splitter.flush());
    }
  };

  /**
   * The nats-server with JetStream, stored in `<dataDir>/nats` so a restart (or the next run) finds it all;
   * with a token, it serves only the clients that present it.
   */
  const natsDir = path.join(dataDir, 'nats');
  const natsCommand = (proc: Proc) => ({
    command: natsServer!,
    args: [
      ...['-js', '-sd', natsDir, '-a', LOOPBACK, '-p', String(proc.port)],
      ...natsTokenArgs(options.eventBusToken, natsDir),
    ],
    cwd: dataDir,
  });

  const serviceCommand = (proc: Proc) => ({
    command: process.execPath,
    cwd: path.join(rootDir, proc.name),
    args: options.dev
      ? [
          require.resolve('nodemon/bin/nodemon.js'),
          '--quiet',
          ...(process.stdout.isTTY ? [] : ['--no-colours']),
          '--watch',
          'dist',
          '--watch',
          '../common/dist',
          '--ext',
          'js',
          '--delay',
          '0.5',
          'dist/index.js',
        ]
      : ['dist/index.js'],
  });

  const spawnProc = (proc: Proc): void => {
    const { command, args, cwd } = proc.name === 'nats' ? natsCommand(proc) : serviceCommand(proc);
    const child = spawn(command, args, {
      cwd,
      env: proc.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    liveChildren.add(child);
    proc.child = child;
    proc.startedAt = Date.now();
    proc.wanted = true;
    pipeLines(child, proc.name, proc.logs);
    proc.exited = new Promise<ExitInfo>((resolve) => {
      child.once('error', (err) => {
        proc.logs.push(`spawn failed: ${err.message}`);
        liveChildren.delete(child);
        resolve({ code: null, signal: null });
      });
      child.once('exit', (code, signal) => {
        liveChildren.delete(child);
        resolve({ code, signal });
      });
    });
    void proc.exited.then((exit) => onExit(proc, child, exit));
  };

  const onExit = (proc: Proc, child: ChildProcess, exit: ExitInfo): void => {
    if (proc.child !== child || !proc.wanted || stopping || !startedAll) return;
    proc.wanted = false;
    // Like a Deployment: back after 1 s; one that keeps dying right away waits twice as long each time.
    const quickCrash = Date.now() - proc.startedAt < 10_000;
    const wait = quickCrash ? proc.crashDelayMs : 1000;
    proc.crashDelayMs = quickCrash ? Math.min(wait * 2, 30_000) : 2000;
    if (!options.autoRestart) {
      status(`✖ ${proc.name} exited unexpectedly (${describeExit(exit)})`);
      return;
    }
    status(`✖ ${proc.name} exited unexpectedly (${describeExit(exit)}); restarting in ${wait / 1000} s`);
    proc.restartTimer = setTimeout(() => {
      proc.restartTimer = undefined;
      if (stopping) return;
      proc.restarts++;
      spawnProc(proc);
      waitUp(proc).then(
        () => status(`✔ ${proc.name} is ready again at ${proc.url} (restart #${proc.restarts})`),
        (err: Error) => status(`✖ ${proc.name} did not come back: ${err.message}`),
      );
    }, wait);
  };

  /** Ready, or a StartError as soon as the process exits or the start is aborted. */
  const waitUp = async (proc: Proc, timeoutMs = readyTimeoutMs): Promise<void> => {
    const abort = new AbortController();
    const onAbort = () => abort.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const exited = proc.exited!.then(async (exit) => {
      await delay(100); // let the last lines of stderr arrive
      throw new StartError(`${proc.name} exited during start (${describeExit(exit)})`, proc.name, [
        ...proc.logs,
      ]);
    });
    const ready = proc.name === 'nats' ? waitForNats : waitForReady;
    try {
      await Promise.race([
        ready(proc.url, { timeoutMs, signal: abort.signal }).catch((err: unknown) => {
          if (options.signal?.aborted) throw new StartError('Start aborted');
          throw new StartError(`${proc.name} is not ready: ${(err as Error).message}`, proc.name, [
            ...proc.logs,
          ]);
        }),
        exited,
      ]);
    } finally {
      exited.catch(() => undefined);
      abort.abort();
      options.signal?.removeEventListener('abort', onAbort);
    }
  };

  const terminate = async (proc: Proc, timeoutMs: number): Promise<ExitInfo | undefined> => {
    proc.wanted = false;
    clearTimeout(proc.restartTimer);
    proc.restartTimer = undefined;
    const child = proc.child;
    if (!child || !proc.exited || child.exitCode !== null || child.signalCode !== null) return undefined;
    signalTree(child, 'SIGTERM');
    signalTree(child, 'SIGCONT'); // a paused process handles SIGTERM only once resumed
    const exit = await withTimeout(proc.exited, timeoutMs);
    if (exit !== 'timeout') return exit;
    status(`${proc.name} did not stop within ${timeoutMs / 1000} s after SIGTERM: sending SIGKILL`);
    signalTree(child, 'SIGKILL');
    return proc.exited;
  };

  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await router?.close();
      for (const helper of helpers) signalTree(helper, 'SIGTERM');
      await Promise.all(SERVICE_NAMES.map((name) => terminate(procs[name], stopTimeoutMs)));
      // The nats-server last, so that no service is left waiting on it while it shuts down.
      if (procs.nats) await terminate(procs.nats, stopTimeoutMs);
      if (procs.nats) removeNatsTokenFile(natsDir);
      for (const helper of helpers) signalTree(helper, 'SIGKILL');
      if (ownDataDir) rmSync(dataDir, { recursive: true, force: true });
    })();
    return stopping;
  };

  // Dev mode: one compiler for everything; each nodemon restarts its service when its output changes.
  if (options.dev) {
    const tsc = spawn(
      process.execPath,
      [require.resolve('typescript/bin/tsc'), '-b', '--watch', '--preserveWatchOutput'],
      { cwd: rootDir, env: process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true },
    );
    liveChildren.add(tsc);
    tsc.once('exit', () => liveChildren.delete(tsc));
    helpers.push(tsc);
    pipeLines(tsc, 'tsc');
  }

  /** `npm run dev`'s client: Vite's dev server on a free port, ready once it answers `/`. */
  const startVite = async (): Promise<string> => {
    const [port] = await freePorts(1);
    const url = `http://127.0.0.1:${port}`;
    const vite = spawn(
      process.execPath,
      [
        path.join(path.dirname(require.resolve('vite/package.json')), 'bin', 'vite.js'),
        '--port',
        String(port),
        '--strictPort',
        '--host',
        LOOPBACK,
      ],
      {
        cwd: path.join(rootDir, 'client'),
        env: process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    liveChildren.add(vite);
    vite.once('exit', () => liveChildren.delete(vite));
    helpers.push(vite);
    pipeLines(vite, 'vite');
    for (const deadline = Date.now() + readyTimeoutMs; ; await delay(POLL_MS, options.signal)) {
      options.signal?.throwIfAborted();
      if (vite.exitCode !== null) throw new StartError('Vite exited during start', 'vite');
      const answered = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
        (response) => response.ok,
        () => false,
      );
      if (answered) return url;
      if (Date.now() > deadline) throw new StartError(`Vite did not answer at ${url}`, 'vite');
    }
  };

  try {
    if (procs.nats) {
      mkdirSync(natsDir, { recursive: true });
      spawnProc(procs.nats);
      await waitUp(procs.nats);
    }
    spawnProc(procs['event-bus']);
    await waitUp(procs['event-bus']);
    for (const name of SUBSCRIBER_NAMES) spawnProc(procs[name]);
    await Promise.all(SUBSCRIBER_NAMES.map((name) => waitUp(procs[name])));
    if (routerOptions) {
      // Under dev, Vite serves the client (with hot reload) and the router sends client-srv to it.
      const viteUrl = options.dev ? await startVite() : undefined;
      router = await startRouter({
        ingressFile: routerOptions.ingressFile ?? path.join(rootDir, 'infra', 'k8s', 'ingress-srv.yaml'),
        backends: localBackends(
          urls,
          viteUrl ?? { dir: routerOptions.clientDir ?? path.join(rootDir, 'client', 'dist') },
        ),
        port: routerPort ?? 0,
        host: routerOptions.host ?? LOOPBACK,
      }).catch((err: NodeJS.ErrnoException) => {
        const message = err.code === 'EADDRINUSE' ? `port ${routerPort} is already in use` : err.message;
        throw new StartError(`The router could not start: ${message}`, 'router');
      });
    }
    startedAll = true;
  } catch (err) {
    // Keep the data directory: startSystem decides whether to retry in it or remove it.
    await router?.close();
    for (const helper of helpers) signalTree(helper, 'SIGKILL');
    await Promise.all(SERVICE_NAMES.map((name) => terminate(procs[name], 2000)));
    if (procs.nats) await terminate(procs.nats, 2000);
    if (procs.nats) removeNatsTokenFile(natsDir);
    throw err;
  }

  return {
    urls,
    ports,
    dataDir,
    transport,
    nats,
    router: router && { url: router.url, port: router.port },
    stop,
    async kill(name, signal = 'SIGKILL') {
      const proc = procOf(name);
      const child = proc.child;
      if (!child || child.exitCode !== null || child.signalCode !== null) return undefined;
      if (signal === 'SIGSTOP' || signal === 'SIGCONT' || signal === 'SIGTSTP') {
        signalTree(child, signal);
        return undefined;
      }
      proc.wanted = false;
      clearTimeout(proc.restartTimer);
      signalTree(child, signal);
      return proc.exited;
    },
    async restart(name) {
      if (stopping) throw new Error('The system is stopped');
      const proc = procOf(name);
      await terminate(proc, stopTimeoutMs);
      proc.restarts++;
      spawnProc(proc);
      await waitUp(proc);
    },
    waitReady(name, timeoutMs = readyTimeoutMs) {
      if (name === 'nats') return waitForNats(nats?.url ?? procOf(name).url, { timeoutMs });
      return waitForReady(procs[name].url, { timeoutMs });
    },
    logs(name) {
      return [...procOf(name).logs];
    },
    status() {
      return names.map((name) => {
        const proc = procOf(name);
        const child = proc.child;
        return {
          name,
          port: proc.port,
          url: proc.url,
          pid: child?.pid,
          running: !!child && child.exitCode === null && child.signalCode === null,
          restarts: proc.restarts,
        };
      });
    },
  };
}
