/**
 * The start-up phase's services, run as ManagedProcess children the way the system (scripts/src/process/) runs them. Readiness
 * is polled here, every few ms, rather than by ManagedProcess: the time to ready is the figure.
 */
import path from 'node:path';
import { sleep } from '../harness.js';
import { ManagedProcess } from '@blog/common/process';
import { ROOT_DIR } from '../process/names.js';
import { profilerEnv } from './profiles.js';
import { get } from './requests.js';
import { now } from './stats.js';

/** How long a stop waits after SIGTERM before SIGKILL. */
const STOP_TIMEOUT_MS = 5000;

export interface Spawned {
  process: ManagedProcess;
  /** When its "listening" log line arrived (at LOG_LEVEL info or lower): the end of its boot. */
  listeningAt: number | undefined;
}

/** `node <service>/dist/index.js`, spawned now; its last lines kept for an error message. */
export function spawnService(name: string, env: Record<string, string>): Spawned {
  const spawned: Spawned = {
    listeningAt: undefined,
    process: new ManagedProcess({
      name,
      command: process.execPath,
      args: ['dist/index.js'],
      cwd: path.join(ROOT_DIR, name),
      env: { ...process.env, ...profilerEnv('replay'), ...env },
      stopTimeoutMs: STOP_TIMEOUT_MS,
      logLines: 200,
      onLine: (line) => {
        if (spawned.listeningAt === undefined && line.includes(`"msg":"${name} listening"`))
          spawned.listeningAt = now();
      },
    }),
  };
  spawned.process.spawn();
  return spawned;
}

/** Polls `/readyz` every `intervalMs` (a small interval: the time to ready is the figure). */
export async function pollReady(
  url: string,
  spawned: Spawned,
  timeoutMs: number,
  intervalMs: number,
): Promise<void> {
  const service = spawned.process;
  const output = () => service.logs().join('\n').slice(-2000);
  const deadline = now() + timeoutMs;
  for (;;) {
    if (!service.running) throw new Error(`${service.name} exited during start:\n${output()}`);
    try {
      const reply = await get(`${url}/readyz`, { timeoutMs: 5000 });
      if (reply.status === 200) return;
    } catch {
      // not listening yet
    }
    if (now() > deadline) throw new Error(`${service.name} not ready after ${timeoutMs} ms:\n${output()}`);
    await sleep(intervalMs);
  }
}
