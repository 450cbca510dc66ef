import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import request from 'supertest';
import { describe, expect, it } from 'vitest';
import { PAGE_MAX_BYTES } from '@blog/common';
import { busRouteTests, eventOfDeliveredSize } from '../../test/support/bus-routes.js';
import { createBus } from './app.js';

// The routes of docs/event-bus.md on the SQLite bus, through supertest on the real app and a real SQLite
// file: those every bus shares (test/support/bus-routes.ts), then its own. The delivery loops are not
// started here (delivery.test.ts covers them), so nothing is sent anywhere.

const { bus } = busRouteTests(async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'event-bus-app-'));
  const sqliteBus = createBus({
    env: { DATA_DIR: dir, LOG_LEVEL: 'silent', SUBSCRIBERS: 'query=http://127.0.0.1:9/events' },
  });
  return {
    ...sqliteBus,
    dir,
    async stop() {
      await sqliteBus.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('the SQLite bus alone', () => {
  it('lists subscribers with their cursor and lag', async () => {
    bus().store.append({ type: 'T', data: {} });
    const res = await request(bus().app).get('/subscribers').expect(200);
    expect(res.body).toEqual([
      {
        name: 'query',
        url: 'http://127.0.0.1:9/events',
        cursor: 0,
        lag: 1,
        failures: 0,
        lastError: null,
        deadLetters: 0,
        batches: false,
        types: null,
        others: null,
      },
    ]);
    const metrics = await request(bus().app).get('/metrics').expect(200);
    expect(metrics.text).toMatch(/eventbus_subscriber_lag\{subscriber="query",service="event-bus"\} 1/);
  });

  it('lists dead letters, all or by subscriber', async () => {
    bus().store.append({ type: 'T', data: {}, id: 'bad' });
    bus().store.addDeadLetter('query', 1, 400, '{"errors":[]}');
    expect((await request(bus().app).get('/dead-letters').expect(200)).body).toMatchObject([
      { subscriber: 'query', seq: 1, id: 'bad', status: 400, response: '{"errors":[]}' },
    ]);
    expect((await request(bus().app).get('/dead-letters?subscriber=posts').expect(200)).body).toEqual([]);
    expect((await request(bus().app).get('/dead-letters?subscriber=').expect(200)).body).toHaveLength(1);
  });

  it('answers a page with one event larger than the page budget alone, and the rest after it', async () => {
    // Only the store could hold such an event (the door refuses it): a page must still never be empty.
    bus().store.append(eventOfDeliveredSize(PAGE_MAX_BYTES + 1000, 'huge'));
    bus().store.append({ type: 'T', data: {}, id: 'small' });
    const page = async (after: number) =>
      ((await request(bus().app).get(`/events?after=${after}`).expect(200)).body as { id: string }[]).map(
        (e) => e.id,
      );
    expect(await page(0)).toEqual(['huge']);
    expect(await page(1)).toEqual(['small']);
  });

  describe('a page of some types (?types=)', () => {
    const typedPage = async (query: string) =>
      (await request(bus().app).get(`/events?${query}`).expect(200)).body as {
        events: { seq: number; type: string }[];
        through: number;
      };
    const fill = () => {
      for (const type of ['A', 'B', 'B', 'A', 'C', 'B']) bus().store.append({ type, data: {} });
    };

    it('holds only those types, and says up to which seq it covers the log', async () => {
      fill();
      const page = await typedPage('after=1&limit=4&types=A,C');
      expect(page.events.map((event) => [event.seq, event.type])).toEqual([
        [4, 'A'],
        [5, 'C'],
      ]);
      expect(page.through).toBe(5);
      // Each event as a projection needs it: no id, no time.
      expect(page.events[0]).toEqual({ seq: 4, type: 'A', data: {} });
      // A range of other types only: no event, and covered all the same; at the head, nothing more.
      expect(await typedPage('after=4&limit=2&types=A')).toEqual({ events: [], through: 6 });
      expect(await typedPage('after=6&types=A')).toEqual({ events: [], through: 6 });
      // The plain page is as it was.
      const plain = (await request(bus().app).get('/events?after=1&limit=2').expect(200)).body;
      expect((plain as { seq: number }[]).map((event) => event.seq)).toEqual([2, 3]);
    });

    it('ends before the event that would take it past the page budget, covering up to the one before', async () => {
      bus().store.append(eventOfDeliveredSize(PAGE_MAX_BYTES - 2000, 'large'));
      bus().store.append({ type: 'Other', data: {}, id: 'other' });
      bus().store.append(eventOfDeliveredSize(5000, 'next'));
      const page = await typedPage('after=0&types=Big');
      expect(page.events.map((event) => event.seq)).toEqual([1]);
      expect(page.through).toBe(2);
      expect((await typedPage('after=2&types=Big')).events.map((event) => event.seq)).toEqual([3]);
    });

    it('refuses a malformed list of types with 400 naming types', async () => {
      for (const types of ['', 'A,,B', 'x'.repeat(101), Array(51).fill('T').join(',')]) {
        const res = await request(bus().app).get(`/events?after=0&types=${types}`).expect(400);
        expect(res.body).toMatchObject({ errors: [{ field: expect.stringMatching(/^types/) }] });
      }
    });
  });

  it('stops at start on a malformed variable, naming it', () => {
    const dir = bus().dir;
    expect(() => createBus({ env: { DATA_DIR: dir, RETRY_MAX_MS: 'soon' } })).toThrow(/RETRY_MAX_MS/);
    expect(() => createBus({ env: { DATA_DIR: dir, SUBSCRIBERS: 'query' } })).toThrow(/SUBSCRIBERS/);
  });
});
