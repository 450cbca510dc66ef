import type { ExitInfo } from '@blog/common/process';
import type { ProcessName, ServiceName, SubscriberName, Transport } from './names.js';

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
   * Processes of each subscriber (posts, comments, query, moderation), each on its own port, with
   * `HOSTNAME=<service>-<index>` so that they tell themselves apart; the bus and the router talk to the
   * first. Above 1 it needs transport `nats`: the HTTP bus delivers to one address per subscriber. Default 1.
   */
  replicas?: number;
  /**
   * Transport `nats`, without `natsUrl`: the nats-servers startSystem runs. Above 1, one JetStream cluster
   * (free ports, stores in a temporary directory), NATS_URL the list of its nodes and NATS_REPLICAS
   * min(3, nodes). Default 1: one nats-server, as described at `natsUrl`.
   */
  natsNodes?: number;
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

/** One process of a subscriber. */
export interface Replica {
  name: ProcessName;
  port: number;
  /** `http://<host>:<port>`, without a trailing slash. */
  url: string;
}

export interface System {
  /** `http://localhost:<port>` of each service (its first replica), without a trailing slash. */
  urls: Readonly<Record<ServiceName, string>>;
  ports: Readonly<Record<ServiceName, number>>;
  /** Every process of each subscriber, the first being the one in `urls`; `addReplica` adds to them. */
  replicas: Readonly<Record<SubscriberName, readonly Replica[]>>;
  dataDir: string;
  transport: Transport;
  /**
   * Transport `nats`: the servers (`NATS_URL`), the stream (`NATS_STREAM`), and whether startSystem runs
   * them (then `kill` and `restart` work on each of `nodes`: `nats`, or `nats-0`, `nats-1`... in a cluster).
   */
  nats?: { url: string; stream: string; ours: boolean; nodes: readonly ProcessName[] };
  /** SIGTERM to all, wait for them to exit (SIGKILL after `stopTimeoutMs`). Safe to call twice. */
  stop(): Promise<void>;
  /**
   * Sends a signal to one process (a service's replica, or a nats-server startSystem runs; default SIGKILL),
   * and waits for it to exit; it stays down until `restart`. SIGSTOP / SIGCONT pause and resume it instead
   * (no waiting). A node of a cluster takes SIGKILL only.
   */
  kill(name: ProcessName, signal?: NodeJS.Signals): Promise<ExitInfo | undefined>;
  /** Stops the process if it runs (SIGTERM), starts it again on the same port and waits until it is ready. */
  restart(name: ProcessName): Promise<void>;
  /**
   * Starts one more process of a subscriber (`<service>-<index>`, a free port), which catches up like any
   * replica, and resolves once it is ready; `stop()` stops it with the others.
   */
  addReplica(service: SubscriberName): Promise<Replica>;
  /** Waits until the service answers `GET /readyz` 200 (the nats-server: greets a client). */
  waitReady(name: ProcessName, timeoutMs?: number): Promise<void>;
  /** The last lines (up to 1000) the process wrote, stdout and stderr interleaved. */
  logs(name: ProcessName): string[];
  /** The nats-server(s) startSystem runs, then every process of the five services. */
  status(): ServiceStatus[];
  /** The local router, when started (`router` option): the one address of the app and its API. */
  router?: { url: string; port: number };
}
