/**
 * One child process, supervised: spawned in its own process group, its output kept and passed on line by
 * line, ready when a check says so, stopped with SIGTERM then SIGKILL, and killed if this process exits.
 *
 *   const server = new ManagedProcess({ name: 'web', command: process.execPath, args: ['server.js'],
 *                                       ready: 'http://127.0.0.1:8080/readyz' });
 *   await server.start();       // spawn, then poll until GET answers 200 (a StartError if it exits first)
 *                               // (`ready: /Listening on/`: until it writes a line that matches)
 *   await server.kill();        // SIGKILL, waits for the exit
 *   await server.restart();     // SIGTERM if running, spawn again, wait until ready
 *   await server.stop();        // SIGTERM, SIGKILL after stopTimeoutMs; safe to call twice
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { isRunning, killOnParentExit, signalTree } from './child-group.js';
import { delay, withTimeout } from './delay.js';
import { describeExit, StartError, type ExitInfo } from './errors.js';
import { LineSplitter } from './line-splitter.js';
import { answers200, pollUntil } from './readiness.js';

/** One attempt at readiness: resolving (other than `false`) is ready; `false` or an error is not yet. */
export type ReadinessCheck = (attempt: { timeoutMs: number; signal: AbortSignal }) => Promise<boolean | void>;

export type OutputStream = 'stdout' | 'stderr';

export interface ManagedProcessOptions {
  /** Names the process in errors and messages. */
  name: string;
  command: string;
  args?: readonly string[];
  /** The child's whole environment. Default: this process's. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /**
   * An HTTP URL polled until it answers 200, a pattern the process writes in a line once ready, or a check
   * polled until it passes. Left out: ready once spawned.
   */
  ready?: string | RegExp | ReadinessCheck;
  /** How long the process may take to become ready. Default 60 s. */
  readyTimeoutMs?: number;
  /** How long `stop()` waits after SIGTERM before SIGKILL. Default 10 s. */
  stopTimeoutMs?: number;
  /** How many of the last output lines `logs()` keeps. Default 1000. */
  logLines?: number;
  /** Every line the process writes, as written. */
  onLine?: (line: string, stream: OutputStream) => void;
  /** Every exit; `unexpected` when no `stop`, `kill` or `restart` asked for it (a crash). */
  onExit?: (exit: ExitInfo, unexpected: boolean) => void;
  /** Messages about what happens (SIGKILL after the stop timeout). Default: none. */
  onStatus?: (message: string) => void;
  /** Aborting it makes a pending `start()` or `waitReady()` reject. */
  signal?: AbortSignal;
}

/** Signals that pause or resume a process rather than end it: `kill` does not wait for an exit. */
const PAUSE_SIGNALS: ReadonlySet<NodeJS.Signals> = new Set(['SIGSTOP', 'SIGCONT', 'SIGTSTP']);

export class ManagedProcess {
  readonly name: string;
  private child: ChildProcess | undefined;
  private exitPromise: Promise<ExitInfo> | undefined;
  private lastExit: ExitInfo | undefined;
  private stopping: Promise<ExitInfo | undefined> | undefined;
  /** Should be running: an exit while true is unexpected. */
  private wanted = false;
  private starts = 0;
  private spawnedAt: number | undefined;
  private readonly kept: string[] = [];
  /** Whether the current run has written a line that `ready` (a pattern) matches. */
  private wroteReadyLine = false;

  constructor(readonly options: ManagedProcessOptions) {
    this.name = options.name;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return isRunning(this.child);
  }

  /** How many times the process was started again after its first start. */
  get restarts(): number {
    return Math.max(0, this.starts - 1);
  }

  /** When the current (or last) run was spawned, in ms since the epoch; undefined before the first. */
  get startedAt(): number | undefined {
    return this.spawnedAt;
  }

  /** How the last run ended; undefined while it runs or before the first. */
  get exit(): ExitInfo | undefined {
    return this.lastExit;
  }

  /** Resolves when the current (or last) run exits; undefined before the first spawn. */
  get exited(): Promise<ExitInfo> | undefined {
    return this.exitPromise;
  }

  /** The last lines (`logLines`) the process wrote, stdout and stderr interleaved. */
  logs(): string[] {
    return [...this.kept];
  }

  /** Spawns the process and waits until it is ready; a StartError if it exits first or times out. */
  async start(): Promise<void> {
    this.spawn();
    await this.waitReady();
  }

  /** Spawns the process without waiting for readiness. */
  spawn(): void {
    if (this.running) throw new Error(`${this.name} is already running`);
    const { command, args = [], cwd, env = process.env } = this.options;
    const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    killOnParentExit(child);
    this.child = child;
    this.lastExit = undefined;
    this.stopping = undefined;
    this.wanted = true;
    this.wroteReadyLine = false;
    this.starts++;
    this.spawnedAt = Date.now();
    this.pipeLines(child);
    this.exitPromise = new Promise<ExitInfo>((resolve) => {
      child.once('error', (err) => {
        this.keep(`spawn failed: ${err.message}`);
        resolve({ code: null, signal: null });
      });
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    void this.exitPromise.then((exit) => {
      if (this.child !== child) return;
      this.lastExit = exit;
      const unexpected = this.wanted;
      this.wanted = false;
      this.options.onExit?.(exit, unexpected);
    });
  }

  /**
   * Waits until the readiness check passes. A StartError if the process exits first, the check does not
   * pass within `timeoutMs`, or the `signal` aborts.
   */
  async waitReady(timeoutMs = this.options.readyTimeoutMs ?? 60_000): Promise<void> {
    const exitedPromise = this.exitPromise;
    if (!exitedPromise) throw new StartError(`${this.name} was never started`, this.name);
    const abort = new AbortController();
    const outer = this.options.signal;
    const onAbort = () => abort.abort(outer?.reason);
    outer?.addEventListener('abort', onAbort, { once: true });
    const exited = exitedPromise.then(async (exit) => {
      await delay(100); // let the last lines of stderr arrive
      throw new StartError(
        `${this.name} exited during start (${describeExit(exit)})`,
        this.name,
        this.logs(),
      );
    });
    try {
      // No pid: the spawn failed, and only the exit (from its `error`) is left to report.
      const ready = this.child?.pid === undefined ? exited : this.pollReady(timeoutMs, abort.signal);
      await Promise.race([ready, exited]);
    } finally {
      exited.catch(() => undefined);
      abort.abort();
      outer?.removeEventListener('abort', onAbort);
    }
  }

  /**
   * SIGTERM (and SIGCONT, as a paused process handles SIGTERM only once resumed), SIGKILL after
   * `timeoutMs`, then waits for the exit. Undefined if it was not running. Safe to call twice.
   */
  stop(timeoutMs = this.options.stopTimeoutMs ?? 10_000): Promise<ExitInfo | undefined> {
    this.wanted = false;
    const child = this.child;
    if (!this.running || !child || !this.exitPromise) return Promise.resolve(undefined);
    const exited = this.exitPromise;
    this.stopping ??= (async () => {
      signalTree(child, 'SIGTERM');
      signalTree(child, 'SIGCONT');
      const exit = await withTimeout(exited, timeoutMs);
      if (exit !== 'timeout') return exit;
      this.options.onStatus?.(
        `${this.name} did not stop within ${timeoutMs / 1000} s after SIGTERM: sending SIGKILL`,
      );
      signalTree(child, 'SIGKILL');
      return exited;
    })();
    return this.stopping;
  }

  /**
   * Sends `signal` (default SIGKILL) to the process group and waits for the exit; SIGSTOP, SIGTSTP and
   * SIGCONT pause or resume it instead, without waiting. Undefined if it was not running.
   */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo | undefined> {
    const child = this.child;
    if (!this.running || !child) return undefined;
    if (PAUSE_SIGNALS.has(signal)) {
      signalTree(child, signal);
      return undefined;
    }
    this.wanted = false;
    signalTree(child, signal);
    return this.exitPromise;
  }

  /** Stops the process if it runs (SIGTERM), spawns it again and waits until it is ready. */
  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  private async pollReady(timeoutMs: number, signal: AbortSignal): Promise<void> {
    const check = this.options.ready;
    if (check === undefined) return;
    const failure =
      typeof check === 'string'
        ? `${check} did not answer 200`
        : check instanceof RegExp
          ? `${this.name} wrote no line matching ${String(check)}`
          : `${this.name} did not become ready`;
    try {
      await pollUntil(failure, this.readinessAttempt(check, signal), { timeoutMs, signal });
    } catch (err) {
      if (this.options.signal?.aborted) throw new StartError('Start aborted', this.name);
      throw new StartError(`${this.name} is not ready: ${(err as Error).message}`, this.name, this.logs());
    }
  }

  private readinessAttempt(
    check: string | RegExp | ReadinessCheck,
    signal: AbortSignal,
  ): (timeoutMs: number) => Promise<void> {
    if (typeof check === 'string') return (ms) => answers200(check, ms);
    if (check instanceof RegExp) {
      return async () => {
        if (!this.wroteReadyLine) throw new Error('not yet');
      };
    }
    return async (ms) => {
      if ((await check({ timeoutMs: ms, signal })) === false) throw new Error('not ready yet');
    };
  }

  private keep(line: string): void {
    const limit = this.options.logLines ?? 1000;
    this.kept.push(line);
    if (this.kept.length > limit) this.kept.splice(0, this.kept.length - limit);
  }

  private pipeLines(child: ChildProcess): void {
    for (const stream of ['stdout', 'stderr'] as const) {
      const splitter = new LineSplitter((line) => {
        this.keep(line);
        const pattern = this.options.ready;
        if (pattern instanceof RegExp && this.child === child && pattern.test(line))
          this.wroteReadyLine = true;
        this.options.onLine?.(line, stream);
      });
      child[stream]?.on('data', (chunk: Buffer) => splitter.push(chunk));
      child[stream]?.on('end', () => splitter.flush());
    }
  }
}
