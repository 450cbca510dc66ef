import type { Express } from 'express';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { EVENT_MAX_BYTES, PAGE_MAX_BYTES } from '@blog/common';

/**
 * The routes of docs/event-bus.md that every bus answers alike, the SQLite bus and the NATS gateway:
 * registered in the calling test file, each test on a new bus from `create`, through supertest on the real
 * app. Returns what the file needs for its own tests of the rest (subscribers, dead letters, ...).
 */
export interface BusUnderTest {
  app: Express;
  stop(): Promise<void>;
}

/** Bodies `POST /events` refuses with 400, naming the field at fault: what it is, the body, the field. */
export const badPublishBodies: [string, unknown, string][] = [
  ['a missing type', { data: {} }, 'type'],
  ['an empty type', { type: '', data: {} }, 'type'],
  ['data that is not an object', { type: 'PostCreated', data: 'hello' }, 'data'],
  ['missing data', { type: 'Whatever' }, 'data'],
  ['a PostCreated without title', { type: 'PostCreated', data: { id: 'p1' } }, 'data.title'],
  [
    'a CommentCreated with a wrong status',
    { type: 'CommentCreated', data: { id: 'c', content: 'x', postId: 'p', status: 'approved' } },
    'data.status',
  ],
  ['an id too long', { type: 'A', data: {}, id: 'x'.repeat(201) }, 'id'],
  ['an empty array', [], 'body'],
  [
    'an array holding one bad event',
    [
      { type: 'A', data: {} },
      { type: 'PostCreated', data: {} },
    ],
    '1.data.id',
  ],
];

/**
 * An event whose JSON, as the bus delivers it with the widest seq it could get (16 digits), is `bytes` long:
 * `{"seq":...,"id":"<id>","time":"<24 characters>","type":"Big","data":{"text":"aaa..."}}`.
 */
export function eventOfDeliveredSize(
  bytes: number,
  id: string,
  type = 'Big',
  data: Record<string, unknown> = {},
) {
  // The padding is a field of its own, which the events' schemas allow (extra fields are kept).
  const json = (text: string) =>
    JSON.stringify({
      seq: Number.MAX_SAFE_INTEGER,
      id,
      time: new Date(0).toISOString(),
      type,
      data: { ...data, text },
    });
  return { type, data: { ...data, text: 'a'.repeat(bytes - json('').length) }, id };
}

export function busRouteTests<Bus extends BusUnderTest>(create: () => Bus | Promise<Bus>) {
  let bus: Bus;
  beforeEach(async () => {
    bus = await create();
  });
  afterEach(() => bus.stop());

  const publish = (body: unknown) =>
    request(bus.app)
      .post('/events')
      .send(body as object);
  const allEvents = async () =>
    (await request(bus.app).get('/events').expect(200)).body as Record<string, unknown>[];
  /** `count` events of type T, published in arrays of up to 1000, numbered from `from`. */
  const publishMany = async (count: number, from = 1) => {
    for (let start = from; start < from + count; start += 1000) {
      const size = Math.min(1000, from + count - start);
      await publish(Array.from({ length: size }, (_, i) => ({ type: 'T', data: { i: start + i } }))).expect(
        200,
      );
    }
  };

  describe('POST /events', () => {
    it('stores a course event and answers {status: "OK"} with its seq and id', async () => {
      const res = await publish({ type: 'PostCreated', data: { id: 'abc', title: 'Hello' } }).expect(200);
      expect(res.body).toEqual({ status: 'OK', seq: 1, id: expect.any(String) });
      expect(await allEvents()).toEqual([
        {
          type: 'PostCreated',
          data: { id: 'abc', title: 'Hello' },
          seq: 1,
          id: res.body.id,
          time: expect.any(String),
        },
      ]);
    });

    it('accepts an unknown type unchecked, and keeps extra fields', async () => {
      await publish({ type: 'PostLiked', data: { anything: [1, 2] }, source: 'learner' }).expect(200);
      expect(await allEvents()).toMatchObject([
        { type: 'PostLiked', data: { anything: [1, 2] }, source: 'learner' },
      ]);
    });

    it('refuses malformed JSON with a JSON 400, and stores nothing', async () => {
      const res = await request(bus.app)
        .post('/events')
        .set('Content-Type', 'application/json')
        .send('{"type": "PostCreated", ')
        .expect(400);
      expect(res.body).toEqual({ errors: [{ message: 'The body is not valid JSON', field: 'body' }] });
      expect(await allEvents()).toEqual([]);
    });

    it('refuses a body that is not application/json', async () => {
      const res = await request(bus.app)
        .post('/events')
        .set('Content-Type', 'text/plain')
        .send('{"type":"A","data":{}}')
        .expect(400);
      expect(res.body.errors[0].field).toBe('body');
    });

    it.each(badPublishBodies)('refuses %s with 400 naming the field', async (_name, body, field) => {
      const res = await publish(body).expect(400);
      expect(res.body.errors).toEqual(expect.arrayContaining([{ message: expect.any(String), field }]));
      expect(await allEvents()).toEqual([]);
    });

    it('publishes an array in order, answering each seq (duplicates flagged)', async () => {
      await publish({ type: 'A', data: {}, id: 'seen' }).expect(200);
      const res = await publish([
        { type: 'B', data: { n: 1 } },
        { type: 'A', data: {}, id: 'seen' },
        { type: 'C', data: { n: 2 }, id: 'new' },
      ]).expect(200);
      expect(res.body).toEqual({
        status: 'OK',
        events: [
          { seq: 2, id: expect.any(String) },
          { seq: 1, id: 'seen', duplicate: true },
          { seq: 3, id: 'new' },
        ],
      });
      expect((await allEvents()).map((e) => e.type)).toEqual(['A', 'B', 'C']);
    });

    it('stores a repeated id once and answers the first seq with duplicate: true', async () => {
      const event = { type: 'PostCreated', data: { id: 'p1', title: 'once' }, id: 'publisher-id-1' };
      const first = await publish(event).expect(200);
      await publish({ type: 'Other', data: {} }).expect(200);
      const again = await publish(event).expect(200);
      expect(first.body).toEqual({ status: 'OK', seq: 1, id: 'publisher-id-1' });
      expect(again.body).toEqual({ status: 'OK', seq: 1, id: 'publisher-id-1', duplicate: true });
      expect((await allEvents()).map((e) => e.id)).toEqual(['publisher-id-1', expect.any(String)]);
    });

    it('gives concurrent publishes seqs 1..N with no holes, the log in that order', async () => {
      const answers = await Promise.all(
        Array.from({ length: 30 }, (_, i) => publish({ type: 'T', data: { i }, id: `id-${i}` }).expect(200)),
      );
      const seqs = answers.map((res) => res.body.seq as number).sort((a, b) => a - b);
      expect(seqs).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
      const events = await allEvents();
      expect(events.map((e) => e.seq)).toEqual(seqs);
      // Each event sits at the seq its publisher was told.
      for (const res of answers) expect(events[res.body.seq - 1]!.id).toBe(res.body.id);
    });

    it("ignores a seq or time sent by the publisher: they are the bus's to assign", async () => {
      await publish({ type: 'T', data: {}, seq: 42, time: 'never' }).expect(200);
      const [event] = await allEvents();
      expect(event).toMatchObject({ seq: 1 });
      expect(event!.time).not.toBe('never');
    });
  });

  describe('GET /events', () => {
    it('answers an empty log with [] and X-Last-Seq 0', async () => {
      const plain = await request(bus.app).get('/events').expect(200);
      expect(plain.body).toEqual([]);
      expect(plain.headers['x-last-seq']).toBe('0');
      expect((await request(bus.app).get('/events?after=0').expect(200)).body).toEqual([]);
    });

    it('answers the whole log as one array, chunked, with X-Last-Seq', async () => {
      await publishMany(12);
      const res = await request(bus.app)
        .get('/events')
        .expect(200)
        .expect('Content-Type', /application\/json/);
      expect(res.headers['x-last-seq']).toBe('12');
      expect(res.headers['transfer-encoding']).toBe('chunked');
      expect((res.body as { seq: number }[]).map((e) => e.seq)).toEqual(
        Array.from({ length: 12 }, (_, i) => i + 1),
      );
    });

    it('streams a log larger than one chunk, every event once and in order', async () => {
      await publishMany(2600);
      const res = await request(bus.app).get('/events').expect(200);
      const seqs = (res.body as { seq: number }[]).map((e) => e.seq);
      expect(seqs).toHaveLength(2600);
      expect(seqs.every((seq, index) => seq === index + 1)).toBe(true);
    });

    it('pages with after and limit', async () => {
      await publishMany(12);
      const res = await request(bus.app).get('/events?after=3&limit=4').expect(200);
      expect(res.headers['x-last-seq']).toBe('12');
      expect((res.body as { seq: number }[]).map((e) => e.seq)).toEqual([4, 5, 6, 7]);
      expect((await request(bus.app).get('/events?after=10').expect(200)).body).toHaveLength(2);
      expect((await request(bus.app).get('/events?limit=5').expect(200)).body).toHaveLength(5);
      expect((await request(bus.app).get('/events?after=12&limit=10').expect(200)).body).toEqual([]);
      expect((await request(bus.app).get('/events?after=500').expect(200)).body).toEqual([]);
    });

    it.each([
      ['after=-1', 'after'],
      ['after=abc', 'after'],
      ['after=1.5', 'after'],
      ['after=1&after=2', 'after'],
      ['limit=0', 'limit'],
      ['limit=10001', 'limit'],
      ['limit=', 'limit'],
      ['after=2&limit=1e3', 'limit'],
    ])('refuses %s with a JSON 400', async (query, field) => {
      const res = await request(bus.app).get(`/events?${query}`).expect(400);
      expect(res.body.errors).toEqual([{ message: expect.any(String), field }]);
    });
  });

  describe('limits in bytes', () => {
    it('stores an event as large as a subscriber takes (EVENT_MAX_BYTES as delivered)', async () => {
      await publish(eventOfDeliveredSize(EVENT_MAX_BYTES, 'at-the-limit')).expect(200);
      expect((await allEvents()).map((e) => e.id)).toEqual(['at-the-limit']);
    });

    it('refuses with 413 an event one byte larger, alone or in an array, and stores nothing', async () => {
      const tooLarge = eventOfDeliveredSize(EVENT_MAX_BYTES + 1, 'one-byte-over');
      const alone = await publish(tooLarge).expect(413);
      expect(alone.body).toEqual({
        errors: [{ message: expect.stringContaining(`limit of ${EVENT_MAX_BYTES} bytes`), field: 'body' }],
      });
      const inArray = await publish([{ type: 'Small', data: {} }, tooLarge]).expect(413);
      expect(inArray.body.errors).toEqual([{ message: expect.stringMatching(/too large/), field: '1' }]);
      expect(await allEvents()).toEqual([]);
    });

    it('ends a page at PAGE_MAX_BYTES; the next page, after its last seq, goes on until one is empty', async () => {
      // 50 events of about 90 KB: 4.5 MB, more than one page carries.
      for (let i = 1; i <= 50; i++) await publish(eventOfDeliveredSize(90_000, `big-${i}`)).expect(200);
      const pages: number[][] = [];
      for (let after = 0; ;) {
        const res = await request(bus.app).get(`/events?after=${after}&limit=10000`).expect(200);
        expect(res.headers['x-last-seq']).toBe('50');
        expect(Buffer.byteLength(res.text)).toBeLessThanOrEqual(PAGE_MAX_BYTES);
        const seqs = (res.body as { seq: number }[]).map((e) => e.seq);
        if (seqs.length === 0) break;
        pages.push(seqs);
        after = seqs.at(-1)!;
      }
      expect(pages.length).toBeGreaterThan(1);
      expect(pages.flat()).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    });
  });

  describe('health and the rest', () => {
    it('has health, readiness, the publish counter, and JSON 404s', async () => {
      await request(bus.app).get('/healthz').expect(200, { status: 'ok' });
      await request(bus.app).get('/readyz').expect(200, { ready: true });
      await publish({ type: 'T', data: {}, id: 'once' }).expect(200);
      await publish({ type: 'T', data: {}, id: 'once' }).expect(200);
      const metrics = await request(bus.app).get('/metrics').expect(200);
      expect(metrics.text).toMatch(/eventbus_published_total\{result="stored",service="event-bus"\} 1/);
      expect(metrics.text).toMatch(/eventbus_published_total\{result="duplicate",service="event-bus"\} 1/);
      expect((await request(bus.app).get('/nowhere').expect(404)).body.errors[0].message).toMatch(/No route/);
    });

    it('stops being ready once stopped', async () => {
      await bus.stop();
      await request(bus.app).get('/readyz').expect(503);
    });

    it('checks the dead-letters query', async () => {
      await request(bus.app).get('/dead-letters?subscriber=a&subscriber=b').expect(400);
    });
  });

  return { bus: () => bus, publish };
}
