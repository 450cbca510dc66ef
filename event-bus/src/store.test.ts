import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEAD_LETTER_RESPONSE_CHARS, EventStore, eventJson, RECENT_KEPT_BYTES } from './store.js';

let dir: string;
const stores: EventStore[] = [];
const open = (dataDir = dir) => {
  const store = new EventStore(dataDir);
  stores.push(store);
  return store;
};

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'event-bus-store-'));
});
afterEach(async () => {
  for (const store of stores.splice(0)) store.close();
  await rm(dir, { recursive: true, force: true });
});

describe('EventStore', () => {
  it('creates events.db (and DATA_DIR) if missing, in WAL mode', () => {
    const dataDir = path.join(dir, 'nested', 'data');
    const store = open(dataDir);
    expect(store.file).toBe(path.join(dataDir, 'events.db'));
    expect(existsSync(store.file)).toBe(true);
    store.close();
    const db = new Database(store.file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
  });

  // A second bus waits out SQLite's busy timeout (5 s) before it gives up.
  it(
    'holds DATA_DIR for itself while open: a second bus stops, saying why, and starts once the first closed',
    { timeout: 20_000 },
    () => {
      const store = open();
      store.append({ type: 'T', data: {}, id: 'one' });
      expect(() => new EventStore(path.dirname(store.file))).toThrow(
        /held by another event-bus: one bus per DATA_DIR/,
      );
      // Reading the log while the bus runs is safe (WAL): what the sqlite3 shell sees.
      const reader = new Database(store.file, { readonly: true });
      expect(reader.prepare('SELECT count(*) AS count FROM events').get()).toEqual({ count: 1 });
      reader.close();
      store.close();
      const next = open(path.dirname(store.file));
      expect(next.append({ type: 'T', data: {}, id: 'two' })).toMatchObject({ seq: 2, duplicate: false });
    },
  );

  it('copies the WAL into events.db from its worker thread, with no commit of its own to trigger it', async () => {
    const store = open();
    const sizeOf = () => statSync(store.file).size;
    store.append({ type: 'T', data: {}, id: 'first' });
    const before = sizeOf();
    // A few hundred pages of WAL, far below the 1,000 at which SQLite's own checkpoint would run.
    for (let i = 0; i < 100; i++) store.append({ type: 'T', data: { text: 'x'.repeat(2000) } });
    expect(sizeOf()).toBe(before);
    const deadline = Date.now() + 5000;
    while (sizeOf() === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(sizeOf()).toBeGreaterThan(before + 100 * 2000);
    expect(store.after(0, 1000).map((row) => row.seq)).toHaveLength(101);

    // Closed while the worker's connection is open: every event is in events.db itself, the WAL empty.
    for (let i = 0; i < 50; i++) store.append({ type: 'T', data: { i } });
    store.close();
    const wal = `${store.file}-wal`;
    expect(existsSync(wal) ? statSync(wal).size : 0).toBe(0);
    const db = new Database(store.file, { readonly: true });
    expect(db.prepare('SELECT count(*) AS count FROM events').get()).toEqual({ count: 151 });
    db.close();
  });

  it('appends with seq 1, 2, 3, keeping the publisher id or making one', () => {
    const store = open();
    const a = store.append({ type: 'PostCreated', data: { id: 'p1', title: 'a' }, id: 'event-a' });
    const b = store.append({ type: 'Anything', data: {} });
    expect(a).toEqual({ seq: 1, id: 'event-a', duplicate: false });
    expect(b.seq).toBe(2);
    expect(b.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(store.headSeq()).toBe(2);
  });

  it('stores an id once: a second append answers the first seq', () => {
    const store = open();
    store.append({ type: 'A', data: {}, id: 'same' });
    store.append({ type: 'B', data: {} });
    expect(store.append({ type: 'A', data: { other: true }, id: 'same' })).toEqual({
      seq: 1,
      id: 'same',
      duplicate: true,
    });
    expect(store.headSeq()).toBe(2);
    expect(store.after(0, 10).map((row) => row.seq)).toEqual([1, 2]);
  });

  it('builds the event JSON from the stored body, keeping extra fields and ignoring a publisher seq/time', () => {
    const store = open();
    store.append({ type: 'X', data: { n: 1 }, id: 'x', extra: 'kept', seq: 99, time: 'yesterday' });
    const [row] = store.after(0, 1);
    const event = JSON.parse(eventJson(row!)) as Record<string, unknown>;
    expect(event).toEqual({ seq: 1, id: 'x', time: row!.time, type: 'X', data: { n: 1 }, extra: 'kept' });
    expect(new Date(String(event.time)).toISOString()).toBe(event.time);
  });

  it('reads pages after a seq, in order', () => {
    const store = open();
    for (let i = 1; i <= 10; i++) store.append({ type: 'T', data: { i } });
    expect(store.after(3, 4).map((row) => row.seq)).toEqual([4, 5, 6, 7]);
    expect(store.after(8, 100).map((row) => row.seq)).toEqual([9, 10]);
    expect(store.after(10, 100)).toEqual([]);
  });

  it('keeps its newest events in memory within a bound in bytes, however large each is', () => {
    const store = open();
    // 600 events of 30 KB: 18 MB, all of which a bound of 5,000 to 10,000 events would keep.
    const text = 'x'.repeat(30_000);
    for (let i = 0; i < 600; i++) store.append({ type: 'T', data: { text } });
    const held = store.recentHeld();
    expect(held.bytes).toBeLessThanOrEqual(2 * RECENT_KEPT_BYTES);
    expect(held.events).toBeLessThan(600);
    // What it let go of is read from SQLite, the same.
    expect(store.after(0, 2).map((row) => row.seq)).toEqual([1, 2]);
    expect(store.after(598, 10).map((row) => row.seq)).toEqual([599, 600]);
  });

  it('reads no more from SQLite than the bytes asked for, but always the first event', () => {
    const first = open();
    // Bodies of a little over 10 KB each.
    for (let i = 0; i < 30; i++) first.append({ type: 'T', data: { text: 'x'.repeat(10_000) } });
    first.close();
    const store = open(); // nothing in memory yet: every read goes to SQLite
    expect(store.after(0, 200, 64 * 1024).map((row) => row.seq)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(store.after(0, 200, 100).map((row) => row.seq)).toEqual([1]);
    expect(store.after(0, 200)).toHaveLength(30);
  });

  it('builds the same JSON in SQLite for pages as eventJson does, whatever the id and texts hold', () => {
    const store = open();
    const odd = [
      'plain',
      'quote " and \\ backslash',
      'tab\tnew\nline',
      'é ü 漢字 🙂',
      '\u0001 control',
      '</script>',
    ];
    odd.forEach((text, i) => store.append({ type: 'T', data: { text, i }, id: `id ${text}` }));
    // A row of a log written before `time` was stored (null), as an old file may have.
    store.close();
    const db = new Database(path.join(dir, 'events.db'));
    db.prepare('UPDATE events SET time = NULL WHERE seq = 2').run();
    db.close();

    // A fresh store: nothing in memory, so `after` reads the rows from SQLite too.
    const reopened = open();
    const pages = reopened.jsonAfter(0, 100);
    expect(pages).toEqual(reopened.after(0, 100).map(eventJson));
    expect(
      pages.map((json) => JSON.parse(json) as { data: { text: string } }).map((e) => e.data.text),
    ).toEqual(odd);
    expect(reopened.jsonAfter(2, 4).map((json) => (JSON.parse(json) as { seq: number }).seq)).toEqual([3, 4]);
    expect(reopened.jsonAfter(6, 100)).toEqual([]);
  });

  it('keeps cursors and dead letters', () => {
    const store = open();
    store.append({ type: 'T', data: {}, id: 'one' });
    expect(store.cursor('query')).toBe(0);
    store.setCursor('query', 1);
    store.setCursor('query', 1);
    expect(store.cursor('query')).toBe(1);

    store.addDeadLetter('query', 1, 400, 'x'.repeat(5000));
    expect(store.deadLetterCount('query')).toBe(1);
    expect(store.deadLetterCount('posts')).toBe(0);
    const [letter] = store.deadLetters('query');
    expect(letter).toMatchObject({ subscriber: 'query', seq: 1, id: 'one', type: 'T', status: 400 });
    expect(letter!.response).toHaveLength(DEAD_LETTER_RESPONSE_CHARS);
    expect(letter!.event).toMatchObject({ seq: 1, id: 'one', type: 'T', data: {} });
    expect(store.deadLetters()).toHaveLength(1);
    expect(store.deadLetters('posts')).toEqual([]);
  });

  it('keeps everything across a close and a reopen of the same file', () => {
    const first = open();
    first.append({ type: 'T', data: { i: 1 }, id: 'a' });
    first.append({ type: 'T', data: { i: 2 }, id: 'b' });
    first.setCursor('posts', 2);
    first.addDeadLetter('posts', 1, 422, 'no');
    first.close();

    const second = open();
    expect(second.headSeq()).toBe(2);
    expect(second.after(0, 10).map((row) => row.id)).toEqual(['a', 'b']);
    expect(second.cursor('posts')).toBe(2);
    expect(second.deadLetterCount('posts')).toBe(1);
    expect(second.append({ type: 'T', data: {}, id: 'a' })).toEqual({ seq: 1, id: 'a', duplicate: true });
    expect(second.append({ type: 'T', data: {}, id: 'c' }).seq).toBe(3);
  });
});
