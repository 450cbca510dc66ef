/**
 * `npm start` (after `npm run build`): the five services as separate processes on the course's ports, the
 * bus first, then the local router on :3000 (the client and the API, routed as the Ingress says). Prints
 * each service's log lines, then what runs where once every one answers `/readyz`; restarts a service
 * that dies; stops them all on Ctrl-C. With `--transport nats` (or EVENT_TRANSPORT=nats) the services
 * exchange events through NATS JetStream: a nats-server started here (store in ./data/nats), or the one at
 * NATS_URL.
 *
 * Every process listens on 127.0.0.1 only; `--host` exposes the router (the app), and nothing else.
 *
 *   node scripts/dist/start.js [--dev] [--quiet] [--port 3000] [--host 0.0.0.0] [--transport http|nats]
 */
import { isIP } from 'node:net';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { painter } from './logs.js';
import {
  DEFAULT_NATS_PORT,
  DEFAULT_PORTS,
  DEFAULT_ROUTER_PORT,
  LOOPBACK,
  ROOT_DIR,
  SERVICE_NAMES,
  transportOptions,
} from './process/names.js';
import { startSystem } from './process/system.js';
import type { System, SystemOptions } from './process/system-types.js';

const USAGE = `Usage: npm start [-- --quiet]      (or: npm run dev)

Starts event-bus (${DEFAULT_PORTS['event-bus']}), posts (${DEFAULT_PORTS.posts}), comments (${DEFAULT_PORTS.comments}), query (${DEFAULT_PORTS.query}) and moderation (${DEFAULT_PORTS.moderation}) from their
built dist/, waits until each is ready, then starts the router on http://localhost:${DEFAULT_ROUTER_PORT}: the
client, and the API paths routed as infra/k8s/ingress-srv.yaml says. Ctrl-C stops them all.

Options:
  --dev       rebuild on every change (tsc -b --watch) and restart the changed services (nodemon);
              the client is served by Vite with hot reload, behind the same router
  --quiet     do not print the services' log lines
  --port N    the router's port (default ${DEFAULT_ROUTER_PORT})
  --host ADDRESS
              the address the router listens on (default ${LOOPBACK}: this machine only); 0.0.0.0 (or ::)
              opens the app to your network. The services and the bus stay on ${LOOPBACK} whatever it is
  --transport http|nats
              how the services exchange events (default: EVENT_TRANSPORT, else http): the event-bus
              service, or NATS JetStream with the event-bus as a gateway to the stream; nats starts
              nats-server -js on ${DEFAULT_NATS_PORT} (from PATH or /usr/sbin) unless NATS_URL names a running one
  --help      this text

The event log is kept in ./data (delete it to start from an empty blog): the bus's events.db, or with
nats the JetStream store in ./data/nats (stream NATS_STREAM, default blog).

EVENT_BUS_TOKEN, when set (16 or more characters, e.g. \`openssl rand -hex 32\`), is passed to every
service: publishing, reading and delivering events then needs Authorization: Bearer <token>.`;

/** What to try on each service, for the table printed once everything is ready. */
const ROUTES: Record<(typeof SERVICE_NAMES)[number], string> = {
  'event-bus': 'POST /events · GET /events?after=&limit= · GET /subscribers · GET /dead-letters',
  posts: 'POST /posts/create {title} · GET /posts',
  comments: 'POST /posts/:id/comments {content} · GET /posts/:id/comments',
  query: 'GET /posts (posts with their comments)',
  moderation: 'POST /events (approves or rejects comments)',
};

/** The bus under nats: the same routes, as a gateway to the stream. */
const NATS_BUS_ROUTES =
  'POST /events · GET /events?after=&limit= · GET /subscribers (a gateway to the stream)';

interface Options {
  dev: boolean;
  quiet: boolean;
  port: number;
  host: string;
  transport: Pick<SystemOptions, 'transport' | 'natsUrl' | 'natsStream'>;
}

function parseOptions(): Options {
  try {
    const { values } = parseArgs({
      options: {
        dev: { type: 'boolean', default: false },
        quiet: { type: 'boolean', short: 'q', default: false },
        port: { type: 'string', default: String(DEFAULT_ROUTER_PORT) },
        host: { type: 'string', default: LOOPBACK },
        transport: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new Error(`--port must be a port number (1-65535), not "${values.port}"`);
    }
    if (isIP(values.host) === 0) {
      throw new Error(`--host must be an IP address (127.0.0.1, 0.0.0.0, ::), not "${values.host}"`);
    }
    return {
      dev: values.dev,
      quiet: values.quiet,
      port,
      host: values.host,
      transport: transportOptions(values.transport),
    };
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    process.exit(2);
  }
}

type Say = (message: string) => void;

/**
 * Ctrl-C (SIGINT, SIGTERM, SIGHUP, or npm gone) stops the system, or aborts its start; a second one, a
 * second or more later, kills every service at once. `isStopping` tells main a stop was asked for.
 */
function handleStopSignals(system: () => System | undefined, abort: AbortController, say: Say) {
  const paint = painter(process.stdout);
  let stopping = false;
  let stoppingAt = 0;
  const shutdown = async () => {
    await system()?.stop();
    say(paint('green', 'All services stopped.'));
    process.exit(0);
  };
  const onSignal = (signal: string) => {
    // One Ctrl-C can arrive twice (from the terminal and forwarded by npm): only a later one means "now".
    if (stopping && Date.now() - stoppingAt < 1000) return;
    if (stopping) {
      say(paint('red', `${signal} again: killing every service now (SIGKILL).`));
      process.exit(1); // the exit hook of @blog/common/process sends SIGKILL to every child
    }
    stopping = true;
    stoppingAt = Date.now();
    say(paint('yellow', `\n${signal}: stopping all services (press Ctrl-C again to kill them at once)...`));
    if (system()) void shutdown();
    else abort.abort(); // still starting: startSystem stops what it started and rejects
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);
  // `kill <npm's pid>` (or `timeout npm start`) ends npm and its shell but does not reach us: notice that
  // we were orphaned, and stop as if told to, rather than leave the services running with nobody to stop them.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent && !stopping) onSignal('Parent process gone');
  }, 500).unref();
  return { isStopping: () => stopping, shutdown };
}

/** `Starting …` and where the events go. */
function startingLine(options: Options, logIn: string): string {
  const paint = painter(process.stdout);
  const { transport, natsUrl } = options.transport;
  const where =
    transport !== 'nats'
      ? `event log in ${logIn}`
      : natsUrl
        ? `events through NATS JetStream at ${natsUrl}`
        : `events through NATS JetStream, stored in ${path.join(logIn, 'nats')}`;
  const natsFirst = transport === 'nats' && !natsUrl ? 'nats-server, ' : '';
  const token = process.env.EVENT_BUS_TOKEN ? '; EVENT_BUS_TOKEN set: the event path needs it' : '';
  return (
    paint(
      'bold',
      `Starting ${natsFirst}${SERVICE_NAMES.join(', ')} and the router${options.dev ? ' in dev mode (watching)' : ''}`,
    ) + paint('gray', ` (${where}${token})`)
  );
}

async function main(): Promise<void> {
  const options = parseOptions();
  const paint = painter(process.stdout);
  const say = (message: string) => process.stdout.write(`${message}\n`);
  const dataDir = path.join(ROOT_DIR, 'data');
  const logIn = path.relative(process.cwd(), dataDir) || '.';
  const startedAt = Date.now();
  const abort = new AbortController();
  let system: System | undefined;
  const { isStopping, shutdown } = handleStopSignals(() => system, abort, say);

  say(startingLine(options, logIn));
  try {
    system = await startSystem({
      ...options.transport,
      // Passed on from the environment: with it, the event path needs the token (docs/event-bus.md).
      eventBusToken: process.env.EVENT_BUS_TOKEN || undefined,
      ports: 'default',
      dataDir,
      quiet: options.quiet,
      dev: options.dev,
      router: { port: options.port, host: options.host },
      autoRestart: true,
      signal: abort.signal,
      onStatus: (message) =>
        say(paint(message.startsWith('✔') ? 'green' : message.startsWith('✖') ? 'red' : 'yellow', message)),
    });
  } catch (err) {
    if (isStopping()) {
      say(paint('green', 'Stopped before every service was ready.'));
      process.exit(0);
    }
    process.stderr.write(`\n${paint('red', `✖ Could not start: ${(err as Error).message}`)}\n`);
    process.exit(1);
  }
  if (isStopping()) return shutdown();
  say(readyText(system, options, logIn));
  const seconds = ((Date.now() - startedAt) / 1000).toFixed(1);
  say(paint('green', `All services ready (${seconds} s). Press Ctrl-C to stop.`));
}

/** What runs where, and what to try. */
function readyText(system: System, options: Options, logIn: string): string {
  const paint = painter(process.stdout);
  // The router first: it is the one address of the app, as posts.com is in the cluster.
  const nats = system.nats;
  const table: Array<[string, string, string]> = [
    [
      'app',
      system.router!.url,
      'the client; its API calls routed as infra/k8s/ingress-srv.yaml says' +
        (options.host === LOOPBACK ? '' : ` (listening on ${options.host}: open to your network)`),
    ],
    ...SERVICE_NAMES.map((name): [string, string, string] => [
      name,
      system.urls[name],
      nats && name === 'event-bus' ? NATS_BUS_ROUTES : ROUTES[name],
    ]),
    ...(nats
      ? [
          [
            'nats',
            nats.url,
            `JetStream, stream "${nats.stream}" (subject ${nats.stream}.events)` +
              (nats.ours ? `, stored in ${path.join(logIn, 'nats')}` : ', given by NATS_URL'),
          ] as [string, string, string],
        ]
      : []),
  ];
  const width = Math.max(...table.map(([name]) => name.length));
  const urlWidth = Math.max(...table.map(([, url]) => url.length));
  const rows = [
    paint('bold', `  ${'service'.padEnd(width)}  ${'URL'.padEnd(urlWidth)}  try`),
    ...table.map(
      ([name, url, routes]) => `  ${name.padEnd(width)}  ${paint('cyan', url.padEnd(urlWidth))}  ${routes}`,
    ),
  ];
  return (
    `\n${rows.join('\n')}\n\n` +
    `  every service: GET /healthz · GET /readyz · GET /metrics (on its own port; the router does not route them)\n\n` +
    `  open ${system.router!.url} in a browser${options.dev ? ' (edits to client/src reload it)' : ''}, or:\n` +
    `  curl -X POST ${system.router!.url}/posts/create -H 'Content-Type: application/json' -d '{"title":"Hello"}'\n` +
    `  curl ${system.router!.url}/posts\n`
  );
}

void main();
