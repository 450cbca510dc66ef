import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagedProcess } from '@blog/common/process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EventStore } from '../event-bus/src/store.js';
import { rssMiB } from '../scripts/src/harness.js';
import { freePorts } from '../scripts/src/process/ports.js';

/**
 * The course's plain `GET /events` returns the whole log as one array. On a log of 200,000 events (about
 * 50 MB of JSON) the bus must stream it: its RSS, sampled while a client reads the answer, may grow by a
 * small part of the answer's size, never by the answer itself. A real bus process on a real SQLite file.
 */
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const EVENTS = 200_000;
/** About 800 bytes an event: a 160 MB answer, far more than the bus may hold at once. */
const FILLER = 'a long comment, '.repeat(45);
const dataDir = mkdtempSync(path.join(os.tmpdir(), 'blog-bus-memory-'));
let bus: ManagedProcess | undefined;
let busUrl: string;

/** The log, written with the bus's own store module in one transaction (as the bench's replay phase does). */
function buildLog(): number {
  const store = new EventStore(dataDir);
  const db = (store as unknown as { db: { transaction: (fn: () => void) => () => void } }).db;
  db.transaction(() => {
    for (let i = 0; i < EVENTS; i++) {
      const id = `c${i.toString(16).padStart(8, '0')}`;
      const content = `comment ${i} ${FILLER}`;
      store.append({
        type: 'CommentCreated',
        data: { id, content, postId: 'p1', status: 'pending' },
        id: randomUUID(),
      });
    }
  })();
  const head = store.headSeq();
  store.setCursor('query', head); // nothing left to deliver: the only reader is the test
  store.close();
  return head;
}

interface Transfer {
  bytes: number;
  /** The bus's RSS before, and its peak while the first and the second half of the answer arrived. */
  baselineMiB: number;
  firstHalfPeakMiB: number;
  secondHalfPeakMiB: number;
  head: string;
  tail: string;
}

/** Reads the whole answer, counting bytes and keeping only its ends, while sampling the bus's RSS. */
function readAllSampling(url: string, pid: number, expectedBytes: number): Promise<Transfer> {
  return new Promise((resolve, reject) => {
    const baselineMiB = rssMiB(pid) ?? 0;
    const t: Transfer = {
      bytes: 0,
      baselineMiB,
      firstHalfPeakMiB: baselineMiB,
      secondHalfPeakMiB: 0,
      head: '',
      tail: '',
    };
    const sample = () => {
      const rss = rssMiB(pid) ?? 0;
      if (t.bytes < expectedBytes / 2) t.firstHalfPeakMiB = Math.max(t.firstHalfPeakMiB, rss);
      else t.secondHalfPeakMiB = Math.max(t.secondHalfPeakMiB, rss);
    };
    const sampler = setInterval(sample, 10);
    const fail = (err: Error) => {
      clearInterval(sampler);
      reject(err);
    };
    http
      .get(url, (res) => {
        res.on('data', (chunk: Buffer) => {
          if (t.head.length < 100) t.head += chunk.subarray(0, 100).toString();
          t.bytes += chunk.length;
          t.tail = (t.tail + chunk.subarray(-3000).toString()).slice(-3000);
        });
        res.on('end', () => {
          sample();
          clearInterval(sampler);
          resolve(t);
        });
        res.on('error', fail);
      })
      .on('error', fail);
  });
}

beforeAll(async () => {
  expect(buildLog()).toBe(EVENTS);
  const [port] = await freePorts(1);
  busUrl = `http://127.0.0.1:${port}`;
  bus = new ManagedProcess({
    name: 'event-bus',
    command: process.execPath,
    args: [...(process.env.BUS_NODE_ARGS ?? '').split(' ').filter(Boolean), 'dist/index.js'],
    cwd: path.join(ROOT, 'event-bus'),
    env: {
      ...process.env,
      PORT: String(port),
      DATA_DIR: dataDir,
      SUBSCRIBERS: 'query=http://127.0.0.1:9/events',
      LOG_LEVEL: 'warn',
    },
    ready: `${busUrl}/readyz`,
    readyTimeoutMs: 30_000,
  });
  await bus.start();
}, 90_000);

afterAll(async () => {
  await bus?.kill();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('the bus on a log of 200,000 events', () => {
  it(
    'streams plain GET /events: its RSS grows by a small part of the answer',
    { timeout: 90_000 },
    async () => {
      const pid = bus!.pid!;
      // A first small read, so the baseline includes what any request costs.
      await fetch(`${busUrl}/events?after=0&limit=10`).then((res) => res.text());
      const t = await readAllSampling(`${busUrl}/events`, pid, EVENTS * 800);
      const answerMiB = t.bytes / 2 ** 20;
      const peakGrowthMiB = Math.max(t.firstHalfPeakMiB, t.secondHalfPeakMiB) - t.baselineMiB;
      const secondHalfGrowthMiB = t.secondHalfPeakMiB - t.firstHalfPeakMiB;
      console.log(
        `GET /events: ${answerMiB.toFixed(1)} MiB for ${EVENTS} events; bus RSS ${t.baselineMiB.toFixed(1)} MiB ` +
          `before, peak ${t.firstHalfPeakMiB.toFixed(1)} MiB while the first half of the answer streamed, ` +
          `${t.secondHalfPeakMiB.toFixed(1)} MiB while the second did`,
      );
      expect(answerMiB).toBeGreaterThan(120);
      expect(t.head.startsWith('[{"seq":1,')).toBe(true);
      expect(t.tail).toContain(`{"seq":${EVENTS},`);
      expect(t.tail.endsWith('}}]')).toBe(true);
      // Bounded: what it grows by (GC headroom for the chunks' garbage) is a fraction of the answer, and it
      // does not go on growing while the second half streams.
      expect(peakGrowthMiB).toBeLessThan(answerMiB / 3);
      expect(secondHalfGrowthMiB).toBeLessThan(answerMiB / 2 / 10);
    },
  );
});
