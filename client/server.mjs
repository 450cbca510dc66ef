// The client's production server: serves the built app (client/dist) on PORT (3000), with the SPA fallback
// to index.html, and GET /healthz and /readyz for the probes. Node built-ins only, so the client image
// needs no node_modules at run time.
//
// With ROUTES set it also forwards requests the way the Kubernetes Ingress does; docker-compose.yml runs it
// like that as its `ingress` service (a stand-in until the local router reads infra/k8s/ingress-srv.yaml):
//   ROUTES='/posts/create=http://posts-clusterip-srv:4000,/posts=http://query-srv:4002,...'
// Each path is a regular expression matched from the start of the URL path, case-insensitively, and the
// longest path is tried first: ingress-nginx's order with `use-regex: "true"`. A request no route matches
// is served from the static folder.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const port = Number(process.env.PORT || 3000);
const staticDir = path.resolve(process.env.STATIC_DIR || fileURLToPath(new URL('./dist', import.meta.url)));

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
};

/** `path=url,path=url` into routes, longest path first. */
function parseRoutes(text) {
  const routes = (text || '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .map((entry) => {
      const at = entry.indexOf('=');
      if (at <= 0) throw new Error(`ROUTES: "${entry}" is not path=http://host:port`);
      const target = new URL(entry.slice(at + 1));
      return { path: entry.slice(0, at), pattern: new RegExp(`^${entry.slice(0, at)}`, 'i'), target };
    });
  return routes.sort((a, b) => b.path.length - a.path.length);
}

const routes = parseRoutes(process.env.ROUTES);

function sendJson(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

function forward(req, res, target) {
  const upstream = http.request(
    {
      host: target.hostname,
      port: target.port || 80,
      method: req.method,
      path: req.url,
      headers: { ...req.headers, 'x-forwarded-host': req.headers.host ?? '' },
    },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', (err) => {
    if (res.headersSent) return void res.destroy();
    sendJson(res, 502, { errors: [{ message: `${target.host} is not reachable: ${err.message}` }] });
  });
  req.pipe(upstream);
}

async function serveStatic(req, res, urlPath) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return sendJson(res, 405, { errors: [{ message: `${req.method} is not allowed here` }] });
  }
  let file = path.join(staticDir, decodeURIComponent(urlPath));
  if (file !== staticDir && !file.startsWith(staticDir + path.sep))
    return sendJson(res, 404, { errors: [{ message: 'Not found' }] });
  let info = await stat(file).catch(() => null);
  if (info?.isDirectory()) {
    file = path.join(file, 'index.html');
    info = await stat(file).catch(() => null);
  }
  if (!info?.isFile()) {
    // A client-side route: the app's index.html decides what to show.
    file = path.join(staticDir, 'index.html');
    info = await stat(file).catch(() => null);
    if (!info?.isFile()) return sendJson(res, 404, { errors: [{ message: 'Not found' }] });
  }
  const hashed = urlPath.startsWith('/assets/');
  res.writeHead(200, {
    'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
    'content-length': info.size,
    'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file).pipe(res);
}

const server = http.createServer((req, res) => {
  const urlPath = new URL(req.url ?? '/', 'http://localhost').pathname;
  if (urlPath === '/healthz' || urlPath === '/readyz') return sendJson(res, 200, { status: 'ok' });
  const route = routes.find((r) => r.pattern.test(urlPath));
  if (route) return forward(req, res, route.target);
  serveStatic(req, res, urlPath).catch((err) => {
    if (res.headersSent) return void res.destroy();
    sendJson(res, 500, { errors: [{ message: err.message }] });
  });
});

server.listen(port, () => {
  const address = server.address();
  const routeList = routes.map((r) => `${r.path}=${r.target.origin}`);
  console.log(JSON.stringify({ msg: 'listening', port: address.port, staticDir, routes: routeList }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
