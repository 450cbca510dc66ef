import { join } from 'node:path';

import { parseScriptArgs } from './harness.js';
import { transportOptions } from './process/names.js';
import type { SystemOptions } from './process/system-types.js';

export const USAGE = `Usage: npm run chaos [-- options]

Starts the five services (real processes, free ports, a fresh temporary event log), writes posts and
comments at a bounded rate while killing services with SIGKILL and restarting them, then checks that every
acknowledged write is there exactly once with its final status, in every replica's view, and that no
answer was a 5xx other than 503. Exit code 1 on any discrepancy.

Options:
  --seed N          the seed of every random choice (default: drawn from the clock, printed)
  --duration S      how long to write and kill, in seconds (default 60)
  --min-kills N     the kills the schedule must reach within the duration (default 20)
  --rate N          writes started per second, at most (default 25)
  --transport T     http (the event-bus) or nats (NATS JetStream: the nats-server is killed too; it
                    runs its own unless NATS_URL is set); default: EVENT_TRANSPORT, else http
  --replicas N      processes of each of posts, comments, query and moderation (default 1; above 1
                    needs nats): writes go to every replica of posts and comments in turn, any replica
                    may be killed, and every replica's view is checked, then one more query replica's
  --nats-nodes N    nats-servers in one JetStream cluster, killed one at a time (default 1; above 1
                    needs nats and no NATS_URL); the stream is kept on min(3, N) of them
  --logs FILE       where the services' log lines go, one readable line each, with every kill and
                    restart between them (default .chaos/<seed>-<transport>.log)
  --json            print the results as JSON on stdout (the report goes to stderr)
  --help            this text`;

export interface ChaosOptions {
  seed: number;
  durationS: number;
  minKills: number;
  rate: number;
  json: boolean;
  /** The file the services' log lines (at warn and above) and the kills go to. */
  logFile: string;
  transport: Pick<SystemOptions, 'transport' | 'natsUrl' | 'natsStream'>;
  replicas: number;
  natsNodes: number;
}

export function parseOptions(argv: string[]): ChaosOptions {
  const values = parseScriptArgs(
    argv,
    {
      seed: { type: 'string' },
      duration: { type: 'string', default: '60' },
      'min-kills': { type: 'string', default: '20' },
      rate: { type: 'string', default: '25' },
      transport: { type: 'string' },
      replicas: { type: 'string', default: '1' },
      'nats-nodes': { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      logs: { type: 'string' },
    },
    USAGE,
  );
  const whole = (name: string, value: string, min: number) => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name}: a whole number, ${min} or more`);
    return n;
  };
  const transport = transportOptions(values.transport);
  const replicas = whole('replicas', values.replicas, 1);
  const natsNodes = whole('nats-nodes', values['nats-nodes'], 1);
  if (replicas > 1 && transport.transport !== 'nats') {
    throw new Error(
      '--replicas above 1 needs --transport nats: the HTTP bus delivers to one address per service',
    );
  }
  if (natsNodes > 1 && (transport.transport !== 'nats' || transport.natsUrl !== undefined)) {
    throw new Error('--nats-nodes above 1 needs --transport nats and no NATS_URL: chaos runs the cluster');
  }
  const seed = values.seed === undefined ? Date.now() % 2 ** 31 : whole('seed', values.seed, 0);
  return {
    seed,
    durationS: whole('duration', values.duration, 1),
    minKills: whole('min-kills', values['min-kills'], 0),
    rate: whole('rate', values.rate, 1),
    json: values.json,
    logFile: values.logs ?? join('.chaos', `${seed}-${transport.transport ?? 'http'}.log`),
    transport,
    replicas,
    natsNodes,
  };
}
