import { randomBytes } from 'node:crypto';
import { accessSync, constants, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ManagedProcess } from './process/managed-process.js';
import { pollUntil, type PollOptions } from './process/readiness.js';

/**
 * Running a real nats-server with JetStream (import from `@blog/common/nats-server`): where its binary is,
 * the arguments that serve one port and store (with a token, only clients presenting it), and
 * `startNatsServer`, a server on a free port of 127.0.0.1 with its store in a temporary folder, able to be
 * SIGKILLed and started again on the same port and store, which is how the tests check what survives a
 * crash of NATS; and `waitForNats`, for a server started elsewhere.
 */

export interface NatsServer {
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  readonly port: number;
  /** JetStream's store (`-sd`): kept across `kill`/`restart`, removed by `stop` if this helper made it. */
  readonly storeDir: string;
  /** Whether the process is running. */
  readonly running: boolean;
  /** The process's id, while it runs. */
  readonly pid: number | undefined;
  /** SIGKILL, as a crash: resolves once the process has exited. Nothing is flushed. */
  kill(): Promise<void>;
  /** Starts it again on the same port and store; resolves once it accepts connections. */
  restart(): Promise<void>;
  /** Kills it and removes the store folder (when the helper created it). */
  stop(): Promise<void>;
}

const BINARY_CANDIDATES = ['/usr/sbin/nats-server', '/usr/local/bin/nats-server', '/usr/bin/nats-server'];
const START_TIMEOUT_MS = 15_000;

/** The nats-server binary: on PATH, else at /usr/sbin/nats-server (Debian's package), or undefined. */
export function findNatsServerBinary(): string | undefined {
  const onPath = (process.env.PATH ?? '').split(path.delimiter).filter(Boolean);
  for (const candidate of [...onPath.map((dir) => path.join(dir, 'nats-server')), ...BINARY_CANDIDATES]) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not there: try the next
    }
  }
  return undefined;
}

/** A stream name no other run uses (stream names may not contain `.`, `*`, `>`, spaces or path separators). */
export const uniqueStreamName = (prefix = 'test'): string =>
  `${prefix.replace(/[^A-Za-z0-9_-]/g, '_')}_${randomBytes(6).toString('hex')}`;

/**
 * The arguments that make a nats-server serve only clients presenting `token` (EVENT_BUS_TOKEN), or none
 * without one: a configuration file written in `dir`, readable by this user only, rather than
 * `--auth <token>`, since any local user can read a process's command line. Remove it with
 * `removeNatsTokenFile(dir)` once the server is gone.
 */
export function natsTokenArgs(token: string | undefined, dir: string): string[] {
  if (!token) return [];
  // The token's alphabet (common/src/token.ts) has no quote or backslash: it stands as is in the string.
  if (!/^[A-Za-z0-9._~+/=-]+$/.test(token)) throw new Error('EVENT_BUS_TOKEN is not a token (see token.ts)');
  const file = path.join(dir, NATS_TOKEN_FILE);
  rmSync(file, { force: true }); // a new file, so that the mode below is its mode from the start
  writeFileSync(file, `authorization {\n  token: "${token}"\n}\n`, { mode: 0o600, flag: 'wx' });
  return ['-c', file];
}

/** Removes what `natsTokenArgs` wrote in `dir`, if anything. */
export const removeNatsTokenFile = (dir: string): void =>
  rmSync(path.join(dir, NATS_TOKEN_FILE), { force: true });

const NATS_TOKEN_FILE = 'nats-auth.conf';

/**
 * `-js -sd <storeDir> -a 127.0.0.1 -p <port>`: JetStream stored in `storeDir`, on the loopback address only,
 * so nothing on the network reaches it; with `token`, the configuration `natsTokenArgs` writes in storeDir.
 */
export function natsServerArgs(options: { port: number; storeDir: string; token?: string }): string[] {
  const { port, storeDir, token } = options;
  return ['-js', '-sd', storeDir, '-a', '127.0.0.1', '-p', String(port), ...natsTokenArgs(token, storeDir)];
}

/**
 * Starts `nats-server -js -sd <storeDir> -a 127.0.0.1 -p <port>` and resolves once it accepts connections
 * with JetStream ready. `port` defaults to a free one, `storeDir` to a new temporary folder; with `token`,
 * it serves only clients that present it. The server is killed if this process exits without stopping it.
 */
export async function startNatsServer(
  options: { port?: number; storeDir?: string; token?: string } = {},
): Promise<NatsServer> {
  const binary = findNatsServerBinary();
  if (!binary) throw new Error('nats-server not installed; apt-get install nats-server');
  const ownStore = options.storeDir === undefined;
  const storeDir = options.storeDir ?? mkdtempSync(path.join(tmpdir(), 'nats-store-'));

  // A free port can be taken by someone else before the server binds it: then try another (unless the
  // caller chose the port).
  let port = options.port ?? (await freePort());
  let server: ManagedProcess;
  for (let attempt = 1; ; attempt++) {
    server = natsServerProcess(binary, port, natsServerArgs({ port, storeDir, token: options.token }));
    try {
      await server.start();
      break;
    } catch (err) {
      if (options.port !== undefined || attempt >= 5 || !/address already in use/i.test(String(err))) {
        if (ownStore) rmSync(storeDir, { recursive: true, force: true });
        throw err;
      }
      port = await freePort();
    }
  }

  return natsServerHandle(server, port, storeDir, () => {
    if (ownStore) rmSync(storeDir, { recursive: true, force: true });
    else removeNatsTokenFile(storeDir);
  });
}

/** A started nats-server process as a `NatsServer`; `stop` kills it, then runs `cleanUp`. */
export function natsServerHandle(
  server: ManagedProcess,
  port: number,
  storeDir: string,
  cleanUp: () => void = () => undefined,
): NatsServer {
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    get running() {
      return server.running;
    },
    get pid() {
      return server.running ? server.pid : undefined;
    },
    kill: async () => void (await server.kill()),
    async restart() {
      await server.kill();
      await server.start();
    },
    async stop() {
      await server.kill();
      cleanUp();
    },
  };
}

/** The server, ready once it logs "Server is ready" (JetStream is up by then): only it can say so. */
export const natsServerProcess = (binary: string, port: number, args: string[]) =>
  new ManagedProcess({
    name: `nats-server on port ${port}`,
    command: binary,
    args,
    ready: /Server is ready/,
    readyTimeoutMs: START_TIMEOUT_MS,
  });

/** A TCP port of 127.0.0.1 free right now (someone may take it before it is used). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** NATS's own port, where a `nats://` URL without one points. */
export const DEFAULT_NATS_PORT = 4222;

/** One attempt: connects and resolves once the server sends its `INFO` line, as NATS greets a client. */
export function natsGreets(natsUrl: string, timeoutMs: number): Promise<void> {
  const url = new URL(natsUrl);
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
  return pollUntil(`${natsUrl} did not greet a client`, (ms) => natsGreets(natsUrl, ms), options);
}
