import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NatsTransport, replicaName } from '@blog/common';
import type { AckPolicy } from '@nats-io/jetstream';
import { uniqueStreamName } from '@blog/common/nats-server';
import { natsAvailability } from '@blog/common/testing';
import { useNats, useOwnNatsServer } from '../../test/support/nats.js';
import { busRouteTests } from '../../test/support/bus-routes.js';
import { waitFor } from '../../test/support/wait-for.js';
import { createEventBus, createNatsBus, type NatsBus } from './app.js';

// The bus with EVENT_TRANSPORT=nats: the course's routes as a gateway to a JetStream stream, through
// supertest on the real app and a real nats-server, each test on a stream of its own.

const envFor = (natsUrl: string, stream = uniqueStreamName('bus')) => ({
  PORT: '0',
  EVENT_TRANSPORT: 'nats',
  NATS_URL: natsUrl,
  NATS_STREAM: stream,
  LOG_LEVEL: 'silent',
});

const shared = natsAvailability();

describe.skipIf(shared.skip)('the NATS gateway', () => {
  const nats = useNats();

  const { bus, publish } = busRouteTests(() => createNatsBus({ env: envFor(nats().url) }));

  it("lists each replica's consumer and any legacy durable, and the same from every gateway", async () => {
    const subscribers = async (app = bus().app) =>
      (await request(app).get('/subscribers').expect(200)).body as {
        name: string;
        kind: string;
        cursor: number;
        waiting: number;
      }[];
    expect(await subscribers()).toEqual([]);
    await publish([
      { type: 'T', data: {} },
      { type: 'T', data: {} },
    ]).expect(200);
    const stream = bus().transport.stream;
    // An older version's durable, which acknowledged 1 of the 2 events.
    const { jsm } = await bus().transport.client.jetStream();
    await jsm.consumers.add(stream, { durable_name: 'legacy', ack_policy: 'all' as AckPolicy });
    const replicas = [
      new NatsTransport({ url: nats().url, stream }),
      new NatsTransport({ url: nats().url, stream }),
    ];
    // A second gateway on the same stream: nothing of the answer is kept in one of them.
    const other = createNatsBus({ env: envFor(nats().url, stream) });
    try {
      for (const replica of replicas) replica.consume('query', async () => undefined);
      await waitFor(async () => (await subscribers()).filter((s) => s.cursor === 2).length === 2);
      const listed = await subscribers();
      expect(listed).toHaveLength(3);
      expect(listed.find((s) => s.name === 'legacy')).toEqual({
        name: 'legacy',
        kind: 'legacy',
        cursor: 0,
        lag: 2,
        pending: 2,
        ackPending: 0,
        failures: 0,
        waiting: 0,
      });
      const views = listed.filter((s) => s.name !== 'legacy');
      for (const view of views) {
        expect(view).toEqual({
          name: expect.stringMatching(new RegExp(`^${replicaName('query')}-`)),
          kind: 'replica',
          cursor: 2,
          lag: 0,
          pending: 0,
          ackPending: 0,
          failures: 0,
          waiting: expect.any(Number),
        });
      }
      expect(new Set(views.map((view) => view.name)).size).toBe(2);
      // Read by a running replica: a pull request open (give or take the moment one expires).
      await waitFor(async () => (await subscribers()).filter((s) => s.waiting > 0).length === 2);
      const names = (list: { name: string; kind: string }[]) => list.map(({ name, kind }) => [name, kind]);
      expect(names(await subscribers(other.app))).toEqual(names(listed));
    } finally {
      await Promise.all([...replicas.map((replica) => replica.close()), other.stop()]);
    }
  });

  it('has no dead letters: JetStream keeps none here', async () => {
    await publish({ type: 'T', data: {} }).expect(200);
    expect((await request(bus().app).get('/dead-letters').expect(200)).body).toEqual([]);
    expect((await request(bus().app).get('/dead-letters?subscriber=query').expect(200)).body).toEqual([]);
  });
});

describe('choosing the bus by EVENT_TRANSPORT', () => {
  it('stops at start on a malformed variable, naming it', () => {
    expect(() => createEventBus({ env: { EVENT_TRANSPORT: 'kafka' } })).toThrow(/EVENT_TRANSPORT=/);
    expect(() => createEventBus({ env: { EVENT_TRANSPORT: 'nats', NATS_URL: 'nats-srv:4222' } })).toThrow(
      /NATS_URL=/,
    );
    expect(() => createEventBus({ env: { EVENT_TRANSPORT: 'nats', NATS_STREAM: 'a.b' } })).toThrow(
      /NATS_STREAM=/,
    );
  });

  it('makes the NATS gateway for nats, with the defaults of the design', async () => {
    const natsBus = createEventBus({ env: { EVENT_TRANSPORT: 'nats', LOG_LEVEL: 'silent' } });
    try {
      expect(natsBus.config).toMatchObject({ NATS_URL: 'nats://nats-srv:4222', NATS_STREAM: 'blog' });
      expect('transport' in natsBus && natsBus.transport).toBeInstanceOf(NatsTransport);
    } finally {
      await natsBus.stop();
    }
  });
});

const own = natsAvailability({ needs: 'binary' });

describe.skipIf(own.skip)('the NATS gateway while NATS is down', () => {
  const server = useOwnNatsServer();
  let bus: NatsBus;
  beforeEach(() => {
    bus = createNatsBus({ env: envFor(server().url) });
  });
  afterEach(() => bus.stop());
  const publish = () => request(bus.app).post('/events').send({ type: 'T', data: {} });
  const ready = async () => (await request(bus.app).get('/readyz')).status === 200;

  it('answers 503 JSON (not 500) to publishes and reads, not ready, and recovers after NATS restarts', async () => {
    await publish().expect(200);
    await server().kill();
    const refused = await publish()
      .expect(503)
      .expect('Content-Type', /application\/json/);
    // What is unavailable, never where it lives.
    expect(refused.body).toEqual({ errors: [{ message: 'NATS is unavailable, try again' }] });
    await request(bus.app).get('/events').expect(503);
    await request(bus.app).get('/events?after=0').expect(503);
    await request(bus.app).get('/subscribers').expect(503);
    const readyz = await request(bus.app).get('/readyz').expect(503);
    expect(readyz.body.reason).toBe('NATS is unavailable, try again');

    await server().restart();
    await waitFor(ready, { timeoutMs: 15_000, message: 'the gateway did not come back' });
    expect((await publish().expect(200)).body.seq).toBe(2);
    const events = (await request(bus.app).get('/events').expect(200)).body as { seq: number }[];
    expect(events.map((e) => e.seq)).toEqual([1, 2]);
  });

  it('starts while NATS is down, not ready, and serves once it is up', async () => {
    await server().kill();
    await bus.start();
    expect(await ready()).toBe(false);
    await publish().expect(503);
    await server().restart();
    expect((await publish().expect(200)).body.seq).toBe(1);
    expect(await ready()).toBe(true);
  });
});
