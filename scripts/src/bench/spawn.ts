/**
 * The start-up phase's processes: a service spawned as processes.ts runs it, its readiness polled at a
 * short interval (the time to ready is the figure), and its stop.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { sleep } from '../harness.js';
import { ROOT_DIR } from '../processes.js';
import { profilerEnv } from './profiles.js';
import { get } from './requests.js';
import { now } from './stats.js';

export interface Spawned {
  name: string;
  child: ChildProcess;
  output: string[];
  /** When its "listening" log line arrived (at LOG_LEVEL info or lower): the end of its boot. */
  listeningAt: number | undefined;
}

/** `node <service>/dist/index.js`, as processes.ts runs it; its output kept for an error message. */
export function spawnService(name: string, env: Record<string, string>): Spawned {
  const child = spawn(process.execPath, ['dist/index.js'], {
    cwd: path.join(ROOT_DIR, name),
    env: { ...process.env, ...profilerEnv('replay'), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const spawned: Spawned = { name, child, output: [], listeningAt: undefined };
  const keep = (chunk: Buffer) => {
    const text = chunk.toString();
    if (spawned.listeningAt === undefined && text.includes(`"msg":"${name} listening"`))
      spawned.listeningAt = now();
    spawned.output.push(text);
    if (spawned.output.length > 50) spawned.output.shift();
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  return spawned;
}

/** Polls `/readyz` every `intervalMs` (a small interval: the time to ready is the figure). */
export async function pollReady(
  url: string,
  spawned: Spawned,
  timeoutMs: number,
  intervalMs: number,
): Promise<void> {
  const deadline = now() + timeoutMs;
  for (;;) {
    if (spawned.child.exitCode !== null || spawned.child.signalCode !== null) {
      throw new Error(`${spawned.name} exited during start:\n${spawned.output.join('').slice(-2000)}`);
    }
    try {
      const reply = await get(`${url}/readyz`, { timeoutMs: 5000 });
      if (reply.status === 200) return;
    } catch {
      // not listening yet
    }
    if (now() > deadline) {
      throw new Error(
        `${spawned.name} not ready after ${timeoutMs} ms:\n${spawned.output.join('').slice(-2000)}`,
      );
    }
    await sleep(intervalMs);
  }
}

export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
