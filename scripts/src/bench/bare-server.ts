/**
 * The rate phase's ceiling: node:http sending the same answer as query, its headers included, so that the
 * client (autocannon) reads the same bytes from both. It runs in its own process, like query, so neither
 * shares a core with autocannon's loop.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { ManagedProcess } from '@blog/common/process';
import { freePorts } from '../process/ports.js';

const thisFile = fileURLToPath(import.meta.url);

/**
 * Runs this module as a server of `bodyFile` with the headers of `headersFile` (a JSON object) on a free
 * port; resolves once it answers.
 */
export async function startBareServer(
  bodyFile: string,
  headersFile: string,
): Promise<{ url: string; server: ManagedProcess }> {
  const [port] = await freePorts(1);
  const url = `http://127.0.0.1:${port}/posts`;
  const server = new ManagedProcess({
    name: 'bare server',
    command: process.execPath,
    args: [thisFile, String(port), bodyFile, headersFile],
    ready: url,
    readyTimeoutMs: 30_000,
    stopTimeoutMs: 5000,
  });
  await server.start();
  return { url, server };
}

/** `node bare-server.js PORT FILE HEADERS`: serves FILE with the headers of the JSON file HEADERS on 127.0.0.1:PORT. */
function serveBare(port: number, bodyFile: string, headersFile: string): void {
  const body = readFileSync(bodyFile);
  const headers = {
    ...(JSON.parse(readFileSync(headersFile, 'utf8')) as Record<string, string>),
    'content-length': body.length,
  };
  const server = http.createServer((_req, res) => {
    res.writeHead(200, headers);
    res.end(body);
  });
  server.keepAliveTimeout = 65_000; // as the services (common/src/http.ts)
  server.listen(port, '127.0.0.1');
}

if (process.argv[1] === thisFile) serveBare(Number(process.argv[2]), process.argv[3]!, process.argv[4]!);
