import type { ChaosOptions } from './chaos-options.js';
import type { Random } from './harness.js';
import { delay, withTimeout } from '@blog/common/process';
import { SUBSCRIBER_NAMES, type ProcessName } from './process/names.js';
import type { System } from './process/system-types.js';

const RESTART_TIMEOUT_MS = 30_000;
/**
 * What to kill, drawn from this list: what holds the only state on disk twice as often, the bus or (on
 * nats) the nats-server, whose gateway then counts as one more service; in a cluster, each node as often
 * as each service's replica; a nats-server we did not start (NATS_URL) is left alone.
 */
function killWeights(system: System): readonly ProcessName[] {
  const services: ProcessName[] = [
    'event-bus',
    ...SUBSCRIBER_NAMES.flatMap((service) => system.replicas[service].map((replica) => replica.name)),
  ];
  if (!system.nats) return ['event-bus', ...services];
  if (!system.nats.ours) return services;
  const nodes = system.nats.nodes;
  return [...(nodes.length === 1 ? [nodes[0]!, nodes[0]!] : nodes), ...services];
}
/**
 * Processes down at the same time, at most: one more when every service has a replica to spare, whose
 * restarts (a catch-up each) would otherwise hold the schedule back.
 */
const maxDown = (system: System) => (system.replicas.query.length > 1 ? 3 : 2);
/** NATS servers down at once, at most: a cluster of three keeps its stream writable with two. */
const MAX_NATS_DOWN = 1;
const isNats = (name: ProcessName) => name === 'nats' || name.startsWith('nats-');

export interface Kill {
  service: ProcessName;
  /** When it was killed, from the start of the run. */
  atMs: number;
  /** How long it stayed down before its restart began. */
  downMs: number;
  /** From the restart to its `/readyz` 200; null if it did not come back in time. */
  restartMs: number | null;
}

/**
 * Kills a service with SIGKILL every so often until the deadline, and restarts each one after a random
 * pause without waiting for it, so a slow restart does not hold up the next kill and two outages can
 * overlap (at most `maxDown` processes down at once, of which one NATS server: the next is killed once
 * the last is back). The pauses between kills are drawn so that `minKills`
 * fit in 90% of the time; when the schedule falls behind, the pause before the next kill is skipped.
 */
export async function killUntil(
  system: System,
  random: Random,
  options: Pick<ChaosOptions, 'durationS' | 'minKills'>,
  startedAt: number,
  deadline: number,
  note: (line: string) => void = () => undefined,
) {
  const kills: Kill[] = [];
  const restarts: Promise<void>[] = [];
  const down = new Set<ProcessName>();
  const weights = killWeights(system);
  const durationMs = options.durationS * 1000;
  const cycleMs = (0.9 * durationMs) / Math.max(1, options.minKills);
  while (Date.now() < deadline) {
    const gapMs = random.between(0.3, 1.2) * cycleMs;
    const downMs = random.between(0.05, 0.5) * cycleMs;
    const service = random.pick(weights);
    const due = ((Date.now() - startedAt) / durationMs) * options.minKills;
    if (kills.length >= due) await delay(gapMs);
    const natsDown = () => [...down].filter(isNats).length >= MAX_NATS_DOWN;
    while (down.size >= maxDown(system) || down.has(service) || (isNats(service) && natsDown()))
      await delay(50);
    if (Date.now() >= deadline) break;
    const kill: Kill = { service, atMs: Date.now() - startedAt, downMs: Math.round(downMs), restartMs: null };
    kills.push(kill);
    down.add(service);
    note(`SIGKILL ${service}; restart in ${kill.downMs} ms`);
    await system.kill(service, 'SIGKILL');
    restarts.push(
      restartAfter(system, service, downMs).then((ms) => {
        kill.restartMs = ms;
        down.delete(service);
        note(ms === null ? `${service} did NOT come back` : `${service} ready ${ms} ms after its restart`);
      }),
    );
  }
  await Promise.all(restarts);
  return kills;
}

/** Restarts a killed service after `downMs`: the time from the restart to its `/readyz` 200, or null. */
async function restartAfter(system: System, service: ProcessName, downMs: number): Promise<number | null> {
  await delay(downMs);
  const restarting = Date.now();
  const restarted = system.restart(service).then(() => Date.now() - restarting);
  const took = await withTimeout(restarted, RESTART_TIMEOUT_MS).catch(() => null);
  return took === 'timeout' ? null : took;
}
