/**
 * The local stand-in for ingress-nginx: one address (http://localhost:3000 under `npm start`) where each
 * request goes where the Ingress in `infra/k8s/ingress-srv.yaml` would send it (see ingress.ts for how
 * the backend is chosen). Service names map to the local processes; `client-srv` is the built client
 * (`client/dist`, served here) or, under `npm run dev`, Vite's dev server (websockets too, for hot reload).
 *
 * Proxying streams both ways (server-sent events flow as they are written), over keep-alive connections,
 * with the request's method, headers and body, plus X-Forwarded-For/Host/Port/Proto and X-Real-IP as
 * ingress-nginx adds them. A backend that is down: 502 JSON. A path the Ingress does not route: 404 JSON.
 * Nothing else is answered here: no health route, no metrics, no bus.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import http, { type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import {
  chooseLocation,
  normalizePath,
  readIngress,
  type IngressLocation,
  type IngressTable,
} from './ingress.js';

/** Where a `service:port` of the Ingress is served locally. */
export type Backend =
  { kind: 'proxy'; url: string; name: string } | { kind: 'static'; dir: string; name: string };

export interface RouterOptions {
  /** The Ingress manifest to route by. */
  ingressFile: string;
  /** Every `service:port` the Ingress names must be here; the router refuses to start otherwise. */
  backends: Record<string, Backend>;
  port?: number;
  host?: string;
}

export interface Router {
  server: Server;
  url: string;
  port: number;
  table: IngressTable;
  close(): Promise<void>;
}

/** Headers that belong to one hop (RFC 9110 7.6.1), not forwarded either way. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
]);

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

function sendJson(res: ServerResponse, status: number, message: string): void {
  const body = JSON.stringify({ errors: [{ message }] });
  res
    .writeHead(status, {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    })
    .end(body);
}

function forwardedHeaders(req: IncomingMessage, localPort: number): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  const connectionTokens = String(req.headers.connection ?? '')
    .split(',')
    .map((token) => token.trim().toLowerCase());
  for (const [name, value] of Object.entries(req.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name) && !connectionTokens.includes(name))
      headers[name] = value;
  }
  const clientIp = req.socket.remoteAddress ?? '';
  const prior = req.headers['x-forwarded-for'];
  headers['x-forwarded-for'] = prior ? `${prior}, ${clientIp}` : clientIp;
  headers['x-real-ip'] = clientIp;
  headers['x-forwarded-host'] = req.headers.host ?? `localhost:${localPort}`;
  headers['x-forwarded-port'] = String(localPort);
  headers['x-forwarded-proto'] = 'http';
  return headers;
}

function responseHeaders(upstream: IncomingMessage): http.OutgoingHttpHeaders {
  const headers: http.OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(upstream.headers)) {
    if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
  }
  return headers;
}

export async function startRouter(options: RouterOptions): Promise<Router> {
  const table = readIngress(options.ingressFile);
  const unknown = table.locations.filter((location) => !options.backends[location.backend]);
  if (unknown.length > 0) {
    throw new Error(
      `${path.basename(options.ingressFile)} routes to ${[...new Set(unknown.map((l) => l.backend))].join(', ')}, ` +
        `which the local router does not know (it knows ${Object.keys(options.backends).join(', ')})`,
    );
  }
  // No cap on sockets per backend: each open event stream holds one, and a cap would queue GET /posts
  // behind them.
  const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256, noDelay: true } as http.AgentOptions);
  let localPort = options.port ?? 0;

  const describe = (location: IngressLocation) =>
    `${options.backends[location.backend]!.name} (${location.backend})`;

  const proxy = (req: IncomingMessage, res: ServerResponse, location: IngressLocation, target: URL) => {
    const upstream = http.request(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: forwardedHeaders(req, localPort),
        agent,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, responseHeaders(answer));
        // An event stream's headers go out now, not with its first message.
        if (String(answer.headers['content-type']).startsWith('text/event-stream')) res.flushHeaders();
        answer.pipe(res);
        answer.once('error', () => res.destroy());
      },
    );
    upstream.once('error', (err: NodeJS.ErrnoException) => {
      if (res.headersSent) return void res.destroy();
      sendJson(
        res,
        502,
        `${describe(location)} is not reachable (${err.code ?? err.message}). Is it running?`,
      );
    });
    // The browser left (closed the tab, an EventSource reconnecting): stop the backend's answer too.
    res.once('close', () => {
      if (!res.writableFinished) upstream.destroy();
    });
    req.pipe(upstream);
  };

  const serveStatic = (req: IncomingMessage, res: ServerResponse, dir: string, urlPath: string) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return sendJson(res, 405, `${req.method} is not allowed here: the client is static files`);
    }
    const index = path.join(dir, 'index.html');
    if (!existsSync(index)) return sendJson(res, 503, 'The client is not built: run `npm run build`');
    const wanted = path.resolve(dir, `.${urlPath}`);
    const inside = wanted.startsWith(path.resolve(dir) + path.sep);
    const isFile = inside && existsSync(wanted) && statSync(wanted).isFile();
    // Hashed bundles never change under one name; anything else (index.html) is checked every time.
    const hashed = urlPath.startsWith('/assets/');
    if (!isFile && hashed) return sendJson(res, 404, `No such file: ${urlPath}`);
    // Every other path is the single-page app's: index.html, which shows the posts.
    const file = isFile ? wanted : index;
    const stat = statSync(file);
    const etag = `"${stat.size.toString(16)}-${Math.floor(stat.mtimeMs).toString(16)}"`;
    const headers = {
      'Content-Type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
      'Cache-Control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
      'X-Content-Type-Options': 'nosniff',
      ETag: etag,
    };
    if (req.headers['if-none-match'] === etag) return void res.writeHead(304, headers).end();
    res.writeHead(200, { ...headers, 'Content-Length': stat.size });
    if (req.method === 'HEAD') return void res.end();
    createReadStream(file)
      .once('error', () => res.destroy())
      .pipe(res);
  };

  const route = (req: IncomingMessage) => {
    const urlPath = normalizePath(req.url ?? '/');
    const location = urlPath === undefined ? undefined : chooseLocation(table, req.url ?? '/');
    return { urlPath, location, backend: location && options.backends[location.backend] };
  };

  const server = http.createServer((req, res) => {
    const { urlPath, location, backend } = route(req);
    if (urlPath === undefined) return sendJson(res, 400, `Bad request path: ${req.url}`);
    if (!location || !backend) {
      return sendJson(res, 404, `No route for ${urlPath} in ${path.basename(options.ingressFile)}`);
    }
    if (backend.kind === 'static') return serveStatic(req, res, backend.dir, urlPath);
    proxy(req, res, location, new URL(backend.url));
  });

  // Websockets (Vite's hot reload in `npm run dev`): routed the same way, then piped both ways.
  const upgraded = new Set<Socket>();
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
    const { backend } = route(req);
    if (!backend || backend.kind !== 'proxy') {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const target = new URL(backend.url);
    const headers = {
      ...forwardedHeaders(req, localPort),
      connection: 'Upgrade',
      upgrade: req.headers.upgrade,
    };
    const upstream = http.request({
      hostname: target.hostname,
      port: target.port,
      path: req.url,
      headers,
      method: req.method,
    });
    upstream.once('upgrade', (answer, upstreamSocket, upstreamHead) => {
      const lines = [`HTTP/1.1 ${answer.statusCode} ${answer.statusMessage}`];
      for (let i = 0; i < answer.rawHeaders.length; i += 2)
        lines.push(`${answer.rawHeaders[i]}: ${answer.rawHeaders[i + 1]}`);
      socket.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (upstreamHead.length > 0) socket.write(upstreamHead);
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.pipe(socket).pipe(upstreamSocket);
      const end = () => {
        socket.destroy();
        upstreamSocket.destroy();
      };
      socket.once('error', end).once('close', end);
      upstreamSocket.once('error', end).once('close', end);
    });
    upstream.once('response', (answer) => {
      socket.end(
        `HTTP/1.1 ${answer.statusCode} ${answer.statusMessage}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`,
      );
      answer.resume();
    });
    upstream.once('error', () =>
      socket.end('HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\nContent-Length: 0\r\n\r\n'),
    );
    upstream.end();
  });
  server.keepAliveTimeout = 65_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '::', () => {
      server.off('error', reject);
      resolve();
    });
  });
  localPort = (server.address() as AddressInfo).port;

  return {
    server,
    port: localPort,
    url: `http://localhost:${localPort}`,
    table,
    async close() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      // Streams in flight (server-sent events) would keep the server open for ever.
      server.closeAllConnections();
      for (const socket of upgraded) socket.destroy();
      agent.destroy();
      await closed;
    },
  };
}

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
    'client-srv:3000':
      typeof client === 'string'
        ? { kind: 'proxy', url: client, name: 'the client (Vite)' }
        : { kind: 'static', dir: client.dir, name: 'the client' },
  };
  for (const [service, name] of Object.entries(SERVICES)) {
    backends[service] = { kind: 'proxy', url: urls[name], name: `the ${name} service` };
  }
  return backends;
}
