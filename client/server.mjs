// The client's production server: serves the built app (client/dist) on PORT (3000), with the SPA fallback
// to index.html, and GET /healthz and /readyz for the probes. Node built-ins only, so the client image
// needs no node_modules at run time. The API is not its business: the Ingress (or, in docker-compose.yml,
// the local router) sends only the catch-all path here.
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

/** What every answer carries: the app's own files only, never framed, never sniffed. */
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

function sendJson(res, status, body) {
  res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8' });
  res.end(JSON.stringify(body));
}

async function serveStatic(req, res, urlPath) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return sendJson(res, 405, { errors: [{ message: `${req.method} is not allowed here` }] });
  }
  let decoded;
  try {
    decoded = decodeURIComponent(urlPath);
  } catch {
    return sendJson(res, 400, { errors: [{ message: 'The path is not valid percent-encoding' }] });
  }
  let file = path.join(staticDir, decoded);
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
    ...SECURITY_HEADERS,
    'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream',
    'content-length': info.size,
    'cache-control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
  });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file).pipe(res);
}

// As the services' servers (common/src/http.ts, SERVER_TIMEOUTS): a request must arrive within 20 s (headers)
// and 30 s (all of it), checked every second; an idle keep-alive connection outlasts the proxies' 60 s.
const server = http.createServer(
  {
    headersTimeout: 20_000,
    requestTimeout: 30_000,
    keepAliveTimeout: 65_000,
    connectionsCheckingInterval: 1000,
  },
  (req, res) => {
    const urlPath = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (urlPath === '/healthz' || urlPath === '/readyz') return sendJson(res, 200, { status: 'ok' });
    serveStatic(req, res, urlPath).catch((err) => {
      if (res.headersSent) return void res.destroy();
      sendJson(res, 500, { errors: [{ message: err.message }] });
    });
  },
);

server.listen(port, () => {
  const address = server.address();
  const { headersTimeout, requestTimeout, keepAliveTimeout } = server;
  const timeouts = { headersTimeout, requestTimeout, keepAliveTimeout };
  console.log(JSON.stringify({ msg: 'listening', port: address.port, staticDir, ...timeouts }));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
