/**
 * What the local router (router.ts) answers itself: the built client's files (`client/dist`, as
 * client/server.mjs serves them in the client image) and its own JSON errors, each with the security
 * headers client/server.mjs sends.
 */
import { createReadStream, statSync, type Stats } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import path from 'node:path';

/**
 * The headers of every answer the router makes itself, the same as client/server.mjs's (the client image
 * has no node_modules and this image no client, so each holds its copy; router/src/router-sockets.test.ts
 * checks that both servers send the same).
 */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

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

/** An error of the router's own: `{"errors": [{message}]}`, with the security headers. */
export function sendJson(
  res: ServerResponse,
  status: number,
  message: string,
  extra: Record<string, string> = {},
): void {
  const body = JSON.stringify({ errors: [{ message }] });
  res
    .writeHead(status, {
      ...SECURITY_HEADERS,
      ...extra,
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    })
    .end(body);
}

/**
 * The same JSON error, written on a socket that has no ServerResponse (an upgrade refused, a request Node's
 * parser refused), then closed.
 */
export function endSocketWithJson(socket: Duplex, status: number, reason: string, message: string): void {
  if (!socket.writable) return void socket.destroy();
  const body = JSON.stringify({ errors: [{ message }] });
  const headers = Object.entries({
    ...SECURITY_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    'Cache-Control': 'no-store',
    Connection: 'close',
  }).map(([name, value]) => `${name}: ${value}`);
  socket.end(`HTTP/1.1 ${status} ${reason}\r\n${headers.join('\r\n')}\r\n\r\n${body}`);
}

/** A file's stats, or undefined if it is not a file (or vanished: `npm run build` rewrites the folder). */
function fileStats(file: string): Stats | undefined {
  try {
    const stats = statSync(file);
    return stats.isFile() ? stats : undefined;
  } catch {
    return undefined;
  }
}

/** Serves `dir` (the built client): its files, and index.html for every path of the single-page app. */
export function serveStatic(req: IncomingMessage, res: ServerResponse, dir: string, urlPath: string): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    return sendJson(res, 405, `${req.method} is not allowed here: the client is static files`, {
      Allow: 'GET, HEAD',
    });
  }
  const index = path.join(dir, 'index.html');
  const wanted = path.resolve(dir, `.${urlPath}`);
  const inside = wanted.startsWith(path.resolve(dir) + path.sep);
  const wantedStats = inside ? fileStats(wanted) : undefined;
  // Hashed bundles never change under one name; anything else (index.html) is checked every time.
  const hashed = urlPath.startsWith('/assets/');
  if (!wantedStats && hashed) return sendJson(res, 404, `No such file: ${urlPath}`);
  // Every other path is the single-page app's: index.html, which shows the posts.
  const file = wantedStats ? wanted : index;
  const stats = wantedStats ?? fileStats(index);
  if (!stats) return sendJson(res, 503, 'The client is not built: run `npm run build`');
  const etag = `"${stats.size.toString(16)}-${Math.floor(stats.mtimeMs).toString(16)}"`;
  const headers = {
    ...SECURITY_HEADERS,
    'Content-Type': CONTENT_TYPES[path.extname(file)] ?? 'application/octet-stream',
    'Cache-Control': hashed ? 'public, max-age=31536000, immutable' : 'no-cache',
    ETag: etag,
  };
  if (req.headers['if-none-match'] === etag) return void res.writeHead(304, headers).end();
  res.writeHead(200, { ...headers, 'Content-Length': stats.size });
  if (req.method === 'HEAD') return void res.end();
  createReadStream(file)
    .once('error', () => res.destroy())
    .pipe(res);
}
