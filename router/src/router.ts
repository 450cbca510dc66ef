/**
 * The local stand-in for ingress-nginx: one address (http://localhost:3000 under `npm start`) where each
 * request goes where the Ingress in `infra/k8s/ingress-srv.yaml` would send it (see ingress.ts for how
 * the backend is chosen). Service names map to the local processes; `client-srv` is the built client
 * (`client/dist`, served here) or, under `npm run dev`, Vite's dev server (websockets too, for hot reload).
 *
 * Proxying streams both ways (server-sent events flow as they are written), over keep-alive connections,
 * with the request's method, headers and body, plus X-Forwarded-For/Host/Port/Proto and X-Real-IP as
 * ingress-nginx adds them (router-proxy.ts). A Service may have several endpoints (replicas), probed and
 * balanced as Kubernetes and ingress-nginx do (endpoints.ts). A backend that is down: 502 JSON; one that
 * does not answer in time: 504 JSON; a Service with no endpoint ready: 503 JSON. A path the Ingress does not route: 404 JSON. Websocket upgrades go to the client's dev
 * server only. Nothing else is answered here: no health route, no metrics, no bus.
 *
 * It runs inside `npm start` and as docker-compose's ingress, so nothing a client does may crash it: every
 * socket has an error listener, and requests and backends are bounded in time as the services are.
 */
import http, { type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import path from 'node:path';
import {
  chooseLocation,
  normalizePath,
  readIngress,
  type IngressLocation,
  type IngressTable,
} from './ingress.js';
import { EndpointPool, type ReadinessProbe } from './endpoints.js';
import { proxyRequest, proxyUpgrade, type ProxyContext } from './router-proxy.js';
import { endSocketWithJson, sendJson, serveStatic } from './router-static.js';

/**
 * Where a `service:port` of the Ingress is served locally. `upgrades`: websockets pass to it (Vite's dev
 * server, for hot reload); any other upgrade is refused. Several URLs are the Service's endpoints, one per
 * replica; with a `probe` each is in rotation only while ready (endpoints.ts), without one always.
 */
export type Backend =
  | {
      kind: 'proxy';
      url: string | readonly string[];
      name: string;
      upgrades?: boolean;
      probe?: ReadinessProbe;
    }
  | { kind: 'static'; dir: string; name: string };

/** How long things may take; the defaults are ROUTER_TIMEOUTS. */
export interface RouterTimeouts {
  /** A client's request headers, then its whole request, to arrive (as the services' servers). */
  headersMs: number;
  requestMs: number;
  /** An idle keep-alive connection from a client. */
  keepAliveMs: number;
  /** A backend to answer, or to go on with an answer that is not an event stream (router-proxy.ts). */
  backendMs: number;
}

/**
 * The services' SERVER_TIMEOUTS (common/src/http.ts; the router's image holds no @blog/common, and
 * router-sockets.test.ts checks they agree), and ingress-nginx's proxy_read_timeout for a backend.
 */
export const ROUTER_TIMEOUTS: Readonly<RouterTimeouts> = {
  headersMs: 20_000,
  requestMs: 30_000,
  keepAliveMs: 65_000,
  backendMs: 60_000,
};

export interface RouterOptions {
  /** The Ingress manifest to route by. */
  ingressFile: string;
  /** Every `service:port` the Ingress names must be here; the router refuses to start otherwise. */
  backends: Record<string, Backend>;
  port?: number;
  host?: string;
  timeouts?: Partial<RouterTimeouts>;
}

export interface Router {
  server: Server;
  url: string;
  port: number;
  table: IngressTable;
  /** The endpoints of a proxied `service:port`: add a replica, mark one terminating, remove it. */
  endpoints(service: string): EndpointPool;
  close(): Promise<void>;
}

/**
 * A request Node's parser refuses, or one that took longer than the timeouts to arrive: a JSON answer, as
 * for everything else the router says; nothing if the answer to it had begun.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  const answering = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
  if (answering || err.code === 'ECONNRESET') return void socket.destroy();
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return endSocketWithJson(socket, 408, 'Request Timeout', 'The request took too long to arrive');
  }
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    return endSocketWithJson(
      socket,
      431,
      'Request Header Fields Too Large',
      'The request headers are too large',
    );
  }
  endSocketWithJson(socket, 400, 'Bad Request', 'The request is not valid HTTP');
}

/** The Ingress table, refused when it routes to a Service the router has no backend for. */
function readRoutableIngress(options: RouterOptions): IngressTable {
  const table = readIngress(options.ingressFile);
  const unknown = table.locations.filter((location) => !options.backends[location.backend]);
  if (unknown.length > 0) {
    throw new Error(
      `${path.basename(options.ingressFile)} routes to ${[...new Set(unknown.map((l) => l.backend))].join(', ')}, ` +
        `which the local router does not know (it knows ${Object.keys(options.backends).join(', ')})`,
    );
  }
  return table;
}

/** The endpoints of each proxied Service, made when first needed (a Service never routed to may have none). */
function endpointPools(backends: Record<string, Backend>) {
  const pools = new Map<string, EndpointPool>();
  return {
    of(service: string): EndpointPool {
      const known = pools.get(service);
      if (known) return known;
      const backend = backends[service];
      if (backend?.kind !== 'proxy') throw new Error(`the router proxies no Service ${service}`);
      const urls = typeof backend.url === 'string' ? [backend.url] : backend.url;
      const pool = new EndpointPool(`${backend.name} (${service})`, urls, backend.probe);
      pools.set(service, pool);
      return pool;
    },
    close(): void {
      for (const pool of pools.values()) pool.close();
    },
  };
}

function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export async function startRouter(options: RouterOptions): Promise<Router> {
  const table = readRoutableIngress(options);
  const timeouts = { ...ROUTER_TIMEOUTS, ...options.timeouts };
  // No cap on sockets per backend: each open event stream holds one, and a cap would queue GET /posts
  // behind them.
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256, noDelay: true } as http.AgentOptions);
  const context: ProxyContext = { agent, localPort: options.port ?? 0, backendTimeoutMs: timeouts.backendMs };

  const pools = endpointPools(options.backends);

  const describe = (location: IngressLocation) =>
    `${options.backends[location.backend]!.name} (${location.backend})`;

  const route = (req: IncomingMessage) => {
    const urlPath = normalizePath(req.url ?? '/');
    const location = urlPath === undefined ? undefined : chooseLocation(table, req.url ?? '/');
    return { urlPath, location, backend: location && options.backends[location.backend] };
  };

  const server = http.createServer(
    {
      headersTimeout: timeouts.headersMs,
      requestTimeout: timeouts.requestMs,
      keepAliveTimeout: timeouts.keepAliveMs,
      // Node checks the two above this often (30 s by default, which would double them).
      connectionsCheckingInterval: Math.min(
        1000,
        Math.ceil(Math.min(timeouts.headersMs, timeouts.requestMs) / 10),
      ),
    },
    (req, res) => {
      const { urlPath, location, backend } = route(req);
      if (urlPath === undefined) return sendJson(res, 400, `Bad request path: ${req.url}`);
      if (!location || !backend) {
        return sendJson(res, 404, `No route for ${urlPath} in ${path.basename(options.ingressFile)}`);
      }
      if (backend.kind === 'static') return serveStatic(req, res, backend.dir, urlPath);
      proxyRequest(req, res, pools.of(location.backend), describe(location), context);
    },
  );
  server.on('clientError', answerClientError);

  // Websockets: Vite's hot reload in `npm run dev`, and nothing else (the API and a built client have none).
  const upgraded = new Set<Socket>();
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    // Node hands the socket over as it is: a reset from now on is ours to handle, or the process dies.
    socket.on('error', () => socket.destroy());
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    const { location, backend } = route(req);
    if (!location || !backend) {
      return endSocketWithJson(
        socket,
        404,
        'Not Found',
        `No route for ${req.url} in ${path.basename(options.ingressFile)}`,
      );
    }
    if (backend.kind !== 'proxy' || !backend.upgrades) {
      const message = `No websocket here: ${describe(location)} takes plain HTTP (only the client's dev server, under npm run dev, takes websockets)`;
      return endSocketWithJson(socket, 400, 'Bad Request', message);
    }
    const target = pools.of(location.backend).next();
    if (!target) {
      const message = `${describe(location)} has no endpoint ready to serve`;
      return endSocketWithJson(socket, 503, 'Service Unavailable', message);
    }
    proxyUpgrade(req, socket, head, target, describe(location), context);
  });

  await listenOn(server, options.port ?? 0, options.host ?? '::');
  context.localPort = (server.address() as AddressInfo).port;

  return {
    server,
    port: context.localPort,
    url: `http://localhost:${context.localPort}`,
    table,
    endpoints: (service) => pools.of(service),
    async close() {
      pools.close();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Streams in flight (server-sent events) would keep the server open for ever.
      server.closeAllConnections();
      for (const socket of upgraded) socket.destroy();
      agent.destroy();
      await closed;
    },
  };
}

/** The client's Service, where the Ingress sends every path the API does not take. */
export const CLIENT_SERVICE = 'client-srv:3000';

/** The Kubernetes Service of each local process, as the manifests in infra/k8s name them. */
const SERVICES: Record<string, 'posts' | 'comments' | 'query' | 'moderation' | 'event-bus'> = {
  'posts-clusterip-srv:4000': 'posts',
  'posts-srv:4000': 'posts',
  'comments-srv:4001': 'comments',
  'query-srv:4002': 'query',
  'moderation-srv:4003': 'moderation',
  'event-bus-srv:4005': 'event-bus',
};

/**
 * Every Service the manifests define, mapped to where it runs here. Only what the Ingress routes is ever
 * reached: the bus is listed so that an Ingress routing to it would work, not because this one does.
 */
export function localBackends(
  urls: Readonly<Record<(typeof SERVICES)[string], string>>,
  client: string | { dir: string },
): Record<string, Backend> {
  const backends: Record<string, Backend> = {
    [CLIENT_SERVICE]:
      typeof client === 'string'
        ? { kind: 'proxy', url: client, name: 'the client (Vite)', upgrades: true }
        : { kind: 'static', dir: client.dir, name: 'the client' },
  };
  for (const [service, name] of Object.entries(SERVICES)) {
    backends[service] = { kind: 'proxy', url: urls[name], name: `the ${name} service` };
  }
  return backends;
}
