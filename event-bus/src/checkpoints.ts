/**
 * SQLite's checkpoints, off the bus's thread (docs/event-bus.md, "Storage").
 *
 * In WAL mode every commit is appended to `events.db-wal`, and a checkpoint copies those pages into
 * `events.db`, with an fsync of each file. SQLite runs it inside the commit that crosses 1,000 pages of WAL,
 * so every few hundred comments one publish held the bus for 10 to 25 ms: the p99 of a comment's latency.
 * Here a worker thread with its own connection checkpoints every 100 ms instead (PASSIVE: it never waits
 * for the bus, and the bus never waits for it), and the bus's own automatic checkpoint is only a backstop
 * at `WAL_BACKSTOP_PAGES`, for load that outruns the worker (the WAL starts again from its beginning only
 * once everything in it is copied, at a moment without commits).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';

export const CHECKPOINT_INTERVAL_MS = 100;
/** Pages of WAL (4 KiB each) past which a commit of the bus checkpoints itself, as SQLite's default does at 1,000. */
export const WAL_BACKSTOP_PAGES = 16_000;
/** How long closing the log waits for the worker's connection to close (a checkpoint under way, its start). */
const STOP_WAIT_MS = 2000;
/** SQLite's own default, for the bus when the worker has failed. */
const SQLITE_AUTOCHECKPOINT_PAGES = 1000;

/** The worker's state, shared with the bus in one Int32Array (`Atomics`). */
const IDLE = 0; // not connected yet (it connects at its first tick)
const OPEN = 1; // connected
const STOPPED = 2; // the bus is closing: the worker must not connect, or must close
const CLOSED = 3; // the worker has closed its connection

// CommonJS, so that it runs as it is from src/ (the tests) and dist/ alike.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const state = workerData.state;
let db;
const end = () => {
  clearInterval(timer);
  if (db) {
    db.close();
    Atomics.store(state, 0, ${CLOSED});
    Atomics.notify(state, 0);
  }
  parentPort.close();
};
const tick = () => {
  // Connects only if the bus has not begun to close (the exchange decides, whichever of the two comes first).
  if (!db) {
    if (Atomics.compareExchange(state, 0, ${IDLE}, ${OPEN}) !== ${IDLE}) return end();
    // timeout 0: a checkpoint that finds the file busy is tried again at the next tick, never waited for.
    db = new Database(workerData.file, { timeout: 0 });
    db.pragma('synchronous = NORMAL');
  }
  if (Atomics.load(state, 0) === ${STOPPED}) return end();
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    if (err.code !== 'SQLITE_BUSY' && err.code !== 'SQLITE_LOCKED') throw err;
  }
};
const timer = setInterval(tick, workerData.intervalMs);
parentPort.on('message', () => (db ? end() : undefined));
`;

/**
 * Hands `db`'s checkpoints to a worker thread. Should the worker fail, `db` checkpoints itself again as
 * SQLite's default does, and `onError` says why.
 */
export class Checkpoints {
  private readonly worker: Worker;
  private readonly state = new Int32Array(new SharedArrayBuffer(4));
  private stopped = false;

  constructor(db: Database.Database, onError: (err: Error) => void) {
    db.pragma(`wal_autocheckpoint = ${WAL_BACKSTOP_PAGES}`);
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file: db.name, driver, intervalMs: CHECKPOINT_INTERVAL_MS, state: this.state },
    });
    // The bus's shutdown stops it; it must never keep the process alive by itself.
    this.worker.unref();
    this.worker.on('error', (err) => {
      if (this.stopped) return;
      this.stopped = true;
      if (db.open) db.pragma(`wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT_PAGES}`);
      onError(err);
    });
  }

  /**
   * Ends the worker's timer and connection. If it has connected, waits (at most `STOP_WAIT_MS`) until it
   * has closed: the bus closes its own connection last, so that SQLite copies the WAL into events.db and
   * removes it, and no file of the log is touched once `close` has returned. (It never waits for a worker
   * that has not connected: one still starting may need this thread, which the wait would hold.)
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (Atomics.compareExchange(this.state, 0, IDLE, STOPPED) === IDLE) return;
    Atomics.store(this.state, 0, STOPPED);
    this.worker.postMessage('stop');
    Atomics.wait(this.state, 0, STOPPED, STOP_WAIT_MS);
  }
}

/**
 * Holds DATA_DIR for this process: `bus.lock`, a small SQLite file written once and locked until the
 * process closes it or ends (the kernel drops the lock of a killed process). A second bus on the same
 * directory waits up to 5 s (better-sqlite3's busy timeout), then gets "database is locked". The log itself
 * cannot be held that way (`locking_mode=EXCLUSIVE`) since the checkpoint worker opens it too.
 */
export function holdDataDir(dataDir: string): Database.Database {
  const lock = new Database(path.join(dataDir, 'bus.lock'));
  try {
    lock.pragma('locking_mode = EXCLUSIVE');
    // The first write takes the exclusive lock, and EXCLUSIVE mode keeps it after the commit.
    lock.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER); DELETE FROM holder;');
    lock.prepare('INSERT INTO holder (pid) VALUES (?)').run(process.pid);
    return lock;
  } catch (err) {
    lock.close();
    throw err;
  }
}
