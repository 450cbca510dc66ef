import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { OutgoingEvent } from '@blog/common';
import { Checkpoints, holdDataDir } from './checkpoints.js';

/**
 * The event log on disk: one SQLite file, `events.db` under DATA_DIR (docs/event-bus.md, "Storage").
 *
 * better-sqlite3 is synchronous, and that is a feature here: an `append` runs start to finish without any
 * other request in between, so two concurrent publishes of the same `id` cannot both be stored.
 */

export interface StoreOptions {
  /** The checkpoint worker failed: the bus checkpoints itself again (checkpoints.ts). */
  onCheckpointError?: (err: Error) => void;
}

/** One row of `events`. `body` is the event as the publisher sent it (minus `id`), already JSON. */
export interface EventRow {
  seq: number;
  id: string;
  type: string;
  body: string;
  time: string | null;
}

export interface AppendResult {
  seq: number;
  id: string;
  duplicate: boolean;
}

export interface DeadLetter {
  subscriber: string;
  seq: number;
  id: string;
  type: string;
  /** The status the subscriber answered, and the start of its answer. */
  status: number;
  response: string;
  /** When the event was dead-lettered. */
  time: string;
  event: unknown;
}

interface DeadLetterRow extends EventRow {
  subscriber: string;
  status: number;
  response: string;
  deadTime: string;
}

/**
 * How many of the newest events `after` serves from memory: up to twice RECENT_KEPT events and twice
 * RECENT_KEPT_BYTES of their JSON, trimmed back to both once either is reached. Bounded in bytes as well as
 * in count, since a count alone lets large events fill the bus's memory limit.
 */
const RECENT_KEPT = 5000;
export const RECENT_KEPT_BYTES = 8 * 1024 * 1024;

/** At most this much of a subscriber's answer is kept with a dead letter. */
export const DEAD_LETTER_RESPONSE_CHARS = 2000;

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY,  -- the rowid: 1, 2, 3, ... with no holes, since rows are never deleted
    id   TEXT UNIQUE NOT NULL,
    type TEXT NOT NULL,
    body TEXT NOT NULL,        -- {"type":...,"data":...,...extra} as JSON, ready to send
    time TEXT
  );
  CREATE TABLE IF NOT EXISTS cursors (
    subscriber TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL  -- the last seq the subscriber acknowledged (or that was dead-lettered)
  );
  CREATE TABLE IF NOT EXISTS dead_letters (
    subscriber TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    status     INTEGER NOT NULL,
    response   TEXT NOT NULL,
    time       TEXT NOT NULL,
    PRIMARY KEY (subscriber, seq)
  );
`;

/**
 * The JSON of a stored event, `{"seq":N,"id":"...","time":"...",...body}`, built by concatenation: the body
 * was serialized once when it was published and is never parsed again, which keeps paging and delivery cheap.
 */
export function eventJson(row: EventRow): string {
  // body is a JSON object with at least "type" and "data", so body.slice(1) is `"type":...}`.
  return `{"seq":${row.seq},"id":${JSON.stringify(row.id)},"time":${JSON.stringify(row.time)},${row.body.slice(1)}`;
}

type StoredForm = Pick<EventRow, 'id' | 'type' | 'body'>;
/** Each event's form, made once: a publish sizes it (deliveredBytes) before it stores it. */
const formsMade = new WeakMap<OutgoingEvent, StoredForm>();

/** What the log keeps of a published event: its id (the publisher's, else a new UUID), type and body. */
export function storedForm(event: OutgoingEvent): StoredForm {
  const made = formsMade.get(event);
  if (made) return made;
  // seq, id and time are the bus's to assign: a publisher's own copies would clash with them in the JSON.
  const { id = randomUUID(), seq: _seq, time: _time, type, data, ...extra } = event;
  const form = { id, type, body: JSON.stringify({ type, data, ...extra }) };
  formsMade.set(event, form);
  return form;
}

/** The widest seq and time an event can be given: an event is measured with them before it has its own. */
const WIDEST = { seq: Number.MAX_SAFE_INTEGER, time: new Date(0).toISOString() };

/** What `eventJson` adds around an event's id and body, the widest seq and time included (id `""`, body `{}`). */
const ENVELOPE_BYTES = Buffer.byteLength(eventJson({ id: '', type: '', body: '{}', ...WIDEST })) - 3;

/** The bytes of the JSON `eventJson` will give for this event, whatever seq it gets. */
export function deliveredBytes(form: Pick<EventRow, 'id' | 'type' | 'body'>): number {
  // eventJson's text is the envelope, the id as JSON and the body less its `{`: counted without making it.
  return ENVELOPE_BYTES + Buffer.byteLength(JSON.stringify(form.id)) + Buffer.byteLength(form.body) - 1;
}

export class EventStore {
  readonly file: string;
  private readonly db: Database.Database;
  /** `bus.lock`, held while the store is open (checkpoints.ts, holdDataDir). */
  private readonly lock: Database.Database;
  /** Started by the first write: a bus that only serves reads (a replay) runs no worker. */
  private checkpoints: Checkpoints | undefined;
  private readonly onCheckpointError: (err: Error) => void;
  /** The highest seq stored, kept in memory: this process is the only writer of the file. */
  private head: number;
  /** The newest events, consecutive by seq, so delivery rarely reads SQLite; and the bytes of their bodies. */
  private recent: EventRow[] = [];
  private recentBytes = 0;

  private readonly insertEvent: Database.Statement<[string, string, string, string], { seq: number }>;
  private readonly seqById: Database.Statement<[string], { seq: number }>;
  private readonly eventsAfter: Database.Statement<[number, number], EventRow>;
  private readonly jsonBetween: Database.Statement<[number, number], string>;
  private readonly typedJsonBetween: Database.Statement<[number, number, string], string>;
  private readonly maxSeq: Database.Statement<[], { seq: number | null }>;
  private readonly cursorOf: Database.Statement<[string], { seq: number }>;
  private readonly upsertCursor: Database.Statement<[string, number]>;
  private readonly insertDeadLetter: Database.Statement<[string, number, number, string, string]>;
  private readonly deadLettersAll: Database.Statement<[], DeadLetterRow>;
  private readonly deadLettersOf: Database.Statement<[string], DeadLetterRow>;
  private readonly countDeadLettersOf: Database.Statement<[string], { count: number }>;
  private readonly appendInTransaction: (events: OutgoingEvent[]) => AppendResult[];

  constructor(dataDir: string, { onCheckpointError }: StoreOptions = {}) {
    this.onCheckpointError = onCheckpointError ?? (() => {});
    mkdirSync(dataDir, { recursive: true });
    this.file = path.join(dataDir, 'events.db');
    try {
      this.lock = holdDataDir(dataDir);
    } catch (err) {
      if (!/database is locked/.test((err as Error).message)) throw err;
      throw new Error(`${dataDir} is held by another event-bus: one bus per DATA_DIR (database is locked)`);
    }
    try {
      this.db = new Database(this.file);
      // WAL: readers never block the writer. synchronous=NORMAL: a commit is not fsynced, so it survives any
      // crash of this process but not a power cut of the whole machine (the trade-off docs/event-bus.md states).
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = NORMAL');
      this.db.exec(SCHEMA);
    } catch (err) {
      this.lock.close();
      throw err;
    }

    // A publish is one statement: the INSERT returns the new seq, or nothing when the id is already stored.
    this.insertEvent = this.db.prepare(
      'INSERT INTO events (id, type, body, time) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING seq',
    );
    this.seqById = this.db.prepare('SELECT seq FROM events WHERE id = ?');
    this.eventsAfter = this.db.prepare(
      'SELECT seq, id, type, body, time FROM events WHERE seq > ? ORDER BY seq LIMIT ?',
    );
    // The JSON of eventJson, built by SQLite: about half the time of rows turned into objects and then into
    // text (docs/performance.md, "Start-up").
    this.jsonBetween = this.db
      .prepare<[number, number], string>(
        `SELECT '{"seq":' || seq || ',"id":' || json_quote(id) || ',"time":' || json_quote(time) || ',' ||
           substr(body, 2) FROM events WHERE seq > ? AND seq <= ? ORDER BY seq`,
      )
      .pluck();
    // A page of some types: only their events (the `type` column, matched in SQLite), each without its id
    // and time, which a reader of such a page does not use and would parse for nothing.
    this.typedJsonBetween = this.db
      .prepare<[number, number, string], string>(
        `SELECT '{"seq":' || seq || ',' || substr(body, 2) FROM events
         WHERE seq > ? AND seq <= ? AND type IN (SELECT value FROM json_each(?)) ORDER BY seq`,
      )
      .pluck();
    this.maxSeq = this.db.prepare('SELECT max(seq) AS seq FROM events');
    this.cursorOf = this.db.prepare('SELECT seq FROM cursors WHERE subscriber = ?');
    this.upsertCursor = this.db.prepare(
      'INSERT INTO cursors (subscriber, seq) VALUES (?, ?) ON CONFLICT (subscriber) DO UPDATE SET seq = excluded.seq',
    );
    // The same event dead-lettered again (delivered again after a restart) keeps one row, the latest answer.
    this.insertDeadLetter = this.db.prepare(
      `INSERT INTO dead_letters (subscriber, seq, status, response, time) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (subscriber, seq) DO UPDATE SET status = excluded.status, response = excluded.response,
         time = excluded.time`,
    );
    const deadLetterQuery = `
      SELECT d.subscriber, d.seq, d.status, d.response, d.time AS deadTime, e.id, e.type, e.body, e.time
      FROM dead_letters d JOIN events e ON e.seq = d.seq`;
    this.deadLettersAll = this.db.prepare(`${deadLetterQuery} ORDER BY d.subscriber, d.seq`);
    this.deadLettersOf = this.db.prepare(`${deadLetterQuery} WHERE d.subscriber = ? ORDER BY d.seq`);
    this.countDeadLettersOf = this.db.prepare(
      'SELECT count(*) AS count FROM dead_letters WHERE subscriber = ?',
    );

    this.appendInTransaction = this.db.transaction((events: OutgoingEvent[]) =>
      events.map((event) => this.append(event)),
    );
    this.head = this.maxSeq.get()?.seq ?? 0;
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  /**
   * Stores an event and gives it the next seq. An event whose `id` is already in the log is not stored
   * again: the answer is the first seq, with `duplicate: true`, so a publisher can retry safely.
   */
  append(event: OutgoingEvent): AppendResult {
    this.startCheckpoints();
    const { id, type, body } = storedForm(event);
    const time = new Date().toISOString();
    const inserted = this.insertEvent.get(id, type, body, time);
    if (inserted) {
      this.head = inserted.seq;
      this.remember({ seq: inserted.seq, id, type, body, time });
      return { seq: inserted.seq, id, duplicate: false };
    }
    // Only a duplicate pays for this second read.
    const first = this.seqById.get(id);
    if (!first) throw new Error(`event ${id} was neither stored nor found`);
    return { seq: first.seq, id, duplicate: true };
  }

  /** Stores several events in one transaction (one commit for all), in the order given. */
  appendMany(events: OutgoingEvent[]): AppendResult[] {
    try {
      return this.appendInTransaction(events);
    } catch (err) {
      // Rolled back: forget the seqs it had taken.
      this.head = this.maxSeq.get()?.seq ?? 0;
      this.forgetRecent();
      throw err;
    }
  }

  /**
   * At most `limit` events with `seq > afterSeq`, in seq order. Those read from SQLite stop before their
   * bodies pass `maxBytes` (the first always comes): those served from memory cost nothing more to hand out.
   */
  after(afterSeq: number, limit: number, maxBytes = Infinity): EventRow[] {
    // Delivery reads the newest events over and over: serve them from memory when it holds them all.
    const oldest = this.recent[0]?.seq;
    if (oldest !== undefined && afterSeq >= oldest - 1) {
      const start = afterSeq - oldest + 1;
      return this.recent.slice(start, start + limit);
    }
    const rows: EventRow[] = [];
    let bytes = 0;
    for (const row of this.eventsAfter.iterate(afterSeq, limit)) {
      bytes += Buffer.byteLength(row.body);
      if (rows.length > 0 && bytes > maxBytes) break; // and the statement ends here
      rows.push(row);
    }
    return rows;
  }

  /** The events with `afterSeq < seq <= throughSeq`, in seq order, each as the text `eventJson` gives. */
  jsonAfter(afterSeq: number, throughSeq: number): string[] {
    return this.jsonBetween.all(afterSeq, throughSeq);
  }

  /**
   * The events of `types` (a JSON array of names) with `afterSeq < seq <= throughSeq`, in seq order, each
   * as `{"seq":N,...body}`: its seq, type, data and any other fields it was published with, not its id or time.
   */
  typedJsonAfter(afterSeq: number, throughSeq: number, typesJson: string): string[] {
    return this.typedJsonBetween.all(afterSeq, throughSeq, typesJson);
  }

  /** Keeps the newest events in memory: see RECENT_KEPT. */
  private remember(row: EventRow): void {
    if (this.recent.length > 0 && this.recent.at(-1)!.seq !== row.seq - 1) this.forgetRecent();
    this.recent.push(row);
    this.recentBytes += Buffer.byteLength(row.body);
    if (this.recent.length < 2 * RECENT_KEPT && this.recentBytes < 2 * RECENT_KEPT_BYTES) return;
    // Keep the newest RECENT_KEPT events, fewer if they hold more than RECENT_KEPT_BYTES (at least one).
    let kept = 0;
    let keptBytes = 0;
    for (let i = this.recent.length - 1; i >= 0 && kept < RECENT_KEPT; i--, kept++) {
      const bytes = Buffer.byteLength(this.recent[i]!.body);
      if (kept > 0 && keptBytes + bytes > RECENT_KEPT_BYTES) break;
      keptBytes += bytes;
    }
    this.recent = this.recent.slice(-kept);
    this.recentBytes = keptBytes;
  }

  private forgetRecent(): void {
    this.recent = [];
    this.recentBytes = 0;
  }

  /** What the cache of the newest events holds (for tests): how many, and the bytes of their bodies. */
  recentHeld(): { events: number; bytes: number } {
    return { events: this.recent.length, bytes: this.recentBytes };
  }

  headSeq(): number {
    return this.head;
  }

  /** The last seq a subscriber is done with (0: none yet). */
  cursor(subscriber: string): number {
    return this.cursorOf.get(subscriber)?.seq ?? 0;
  }

  setCursor(subscriber: string, seq: number): void {
    this.startCheckpoints();
    this.upsertCursor.run(subscriber, seq);
  }

  addDeadLetter(subscriber: string, seq: number, status: number, response: string): void {
    this.insertDeadLetter.run(
      subscriber,
      seq,
      status,
      response.slice(0, DEAD_LETTER_RESPONSE_CHARS),
      new Date().toISOString(),
    );
  }

  /** Every dead letter (of one subscriber, if named), with the event itself. Rare, so parsing is fine. */
  deadLetters(subscriber?: string): DeadLetter[] {
    const rows = subscriber === undefined ? this.deadLettersAll.all() : this.deadLettersOf.all(subscriber);
    return rows.map((row) => ({
      subscriber: row.subscriber,
      seq: row.seq,
      id: row.id,
      type: row.type,
      status: row.status,
      response: row.response,
      time: row.deadTime,
      event: JSON.parse(eventJson(row)) as unknown,
    }));
  }

  deadLetterCount(subscriber: string): number {
    return this.countDeadLettersOf.get(subscriber)?.count ?? 0;
  }

  /** The worker's connection closed first (`stop` waits for it), this one, the last, copies the WAL into events.db. */
  close(): void {
    this.checkpoints?.stop();
    if (this.db.open) this.db.close();
    if (this.lock.open) this.lock.close();
  }

  /** Hands the checkpoints to their worker from the first write on (checkpoints.ts). */
  private startCheckpoints(): void {
    this.checkpoints ??= new Checkpoints(this.db, this.onCheckpointError);
  }
}
