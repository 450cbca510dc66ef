/**
 * The rate phase's ceiling: node:http sending the same bytes with the same Content-Type. It runs in its own
 * process, like query, so neither shares a core with autocannon's loop.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

const thisFile = fileURLToPath(import.meta.url);

/** Forks this module as a server of `bodyFile`; resolves once it listens. */
export async function startBareServer(
  bodyFile: string,
  contentType: string,
): Promise<{ url: string; child: ChildProcess }> {
  const child = fork(thisFile, [bodyFile, contentType], {
    execArgv: [],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.once('message', (message: { port?: number }) =>
      message.port ? resolve(message.port) : reject(new Error('bare server: no port')),
    );
    child.once('exit', (code) => reject(new Error(`bare server exited (${code})`)));
  });
  return { url: `http://127.0.0.1:${port}/posts`, child };
}

/** `node bare-server.js FILE TYPE`: serves FILE on a free port of 127.0.0.1 and sends the port to its parent. */
function serveBare(bodyFile: string, contentType: string): void {
  const body = readFileSync(bodyFile);
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': contentType, 'content-length': body.length });
    res.end(body);
  });
  server.keepAliveTimeout = 65_000; // as the services (common/src/http.ts)
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as { port: number };
    process.send?.({ port });
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[1] === thisFile) serveBare(process.argv[2]!, process.argv[3]!);
