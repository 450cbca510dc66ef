import type { ChildProcess } from 'node:child_process';

const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;

/**
 * Kills `child` (and its process group) if this process exits first, without stopping it (a failed test,
 * an uncaught error). One `exit` listener serves every child.
 */
export function killOnParentExit(child: ChildProcess): void {
  liveChildren.add(child);
  const forget = () => liveChildren.delete(child);
  child.once('exit', forget);
  child.once('error', forget);
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const live of liveChildren) signalTree(live, 'SIGKILL');
  });
}

export function isRunning(child: ChildProcess | undefined): child is ChildProcess {
  return !!child && child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Children run in their own process group (so Ctrl-C reaches only us): signal the whole group. */
export function signalTree(child: ChildProcess, signal: NodeJS.Signals): void {
  if (!isRunning(child)) return;
  try {
    process.kill(process.platform === 'win32' ? child.pid! : -child.pid!, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}
