/**
 * The rate phase's ceiling: node:http sending the same bytes with the same Content-Type. It runs in its own
 * process, like query, so neither shares a core with autocannon's loop.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { ManagedProcess } from '@blog/common/process';
import { freePorts } from '../process/ports.js';

const thisFile = fileURLToPath(import.meta.url);

/** Runs this module as a server of `bodyFile` on a free port; resolves once it answers. */
export async function startBareServer(
  bodyFile: string,
  contentType: string,
): Promise<{ url: string; server: ManagedProcess }> {
  const [port] = await freePorts(1);
  const url = `http://127.0.0.1:${port}/posts`;
  const server = new ManagedProcess({
    name: 'bare server',
    command: process.execPath,
    args: [thisFile, String(port), bodyFile, contentType],
    ready: url,
    readyTimeoutMs: 30_000,
    stopTimeoutMs: 5000,
  });
  await server.start();
  return { url, server };
}

/** `node bare-server.js PORT FILE TYPE`: serves FILE on 127.0.0.1:PORT. */
function serveBare(port: number, bodyFile: string, contentType: string): void {
  const body = readFileSync(bodyFile);
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': contentType, 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 65_000; // as the services (common/src/http.ts)
  server.listen(port, '127.0.0.1');
}

if (process.argv[1] === thisFile) serveBare(Number(process.argv[2]), process.argv[3]!, process.argv[4]!);
