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
/** SQLite's own default, for the bus when the worker has failed. */
const SQLITE_AUTOCHECKPOINT_PAGES = 1000;

// CommonJS, so that it runs as it is from src/ (the tests) and dist/ alike.
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
// timeout 0: a checkpoint that finds the file busy is tried again at the next tick, never waited for.
const db = new Database(workerData.file, { timeout: 0 });
db.pragma('synchronous = NORMAL');
const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch (err) {
    if (err.code !== 'SQLITE_BUSY' && err.code !== 'SQLITE_LOCKED') throw err;
  }
}, workerData.intervalMs);
parentPort.on('message', () => {
  clearInterval(timer);
  db.close();
  parentPort.close();
});
`;

/**
 * Hands `db`'s checkpoints to a worker thread. Should the worker fail, `db` checkpoints itself again as
 * SQLite's default does, and `onError` says why.
 */
export class Checkpoints {
  private readonly worker: Worker;
  private stopped = false;

  constructor(
    private readonly db: Database.Database,
    onError: (err: Error) => void,
  ) {
    db.pragma(`wal_autocheckpoint = ${WAL_BACKSTOP_PAGES}`);
    const driver = createRequire(import.meta.url).resolve('better-sqlite3');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { file: db.name, driver, intervalMs: CHECKPOINT_INTERVAL_MS },
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

  /** Ends the worker's timer and connection (before the bus closes its own). */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.worker.postMessage('stop');
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
