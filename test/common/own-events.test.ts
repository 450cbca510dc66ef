import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createService, HttpClient, type Projection } from '@blog/common';
import { afterEach, describe, expect, it } from 'vitest';
import { createBus } from '../../event-bus/src/app.js';
import { waitFor } from '../support/wait-for.js';

// A service's own events applied from the publish's answer (docs/event-bus.md, "A publisher's own
// events"): a real bus and a real service over HTTP, each reaching the other through a relay that records
// what passes and can cut an answer off after the request went through, as a broken connection would.

interface Titles {
  titles: string[];
}
/** Acts on PostCreated only, as posts does, so the bus skips the other types for it. */
const titles: Projection<Titles> = {
  initial: () => ({ titles: [] }),
  types: ['PostCreated'],
  apply(state, event) {
    if (event.type === 'PostCreated') state.titles.push(event.data.title);
  },
};

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Relayed {
  method: string;
  url: string;
  body: string;
}

/** Forwards every request to `target`; records it; answers nothing (drops the connection) while `cut` says so. */
async function relay() {
  const client = new HttpClient();
  const state = { target: '', cut: (_request: Relayed) => false, seen: [] as Relayed[] };
  const server = http.createServer((req, res) => {
    // A relay of requests, not of sockets: asked for one, it answers 404, and the service POSTs to it.
    if (req.headers.upgrade) return void res.writeHead(404).end();
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      const request = { method: req.method!, url: req.url!, body };
      state.seen.push(request);
      const headers = Object.fromEntries(
        Object.entries(req.headers).filter(([name]) => /^(x-events-|authorization)/.test(name)),
      ) as Record<string, string>;
      client
        .request(`${state.target}${req.url}`, {
          method: req.method as 'GET' | 'POST',
          body: req.method === 'POST' ? body : undefined,
          headers,
          timeoutMs: 10_000,
        })
        .then((answer) => {
          if (state.cut(request)) return void res.destroy();
          const passed = Object.entries(answer.headers).filter(([name]) =>
            /^(x-events-|x-last-seq)/.test(name),
          );
          res.writeHead(answer.status, { 'Content-Type': 'application/json', ...Object.fromEntries(passed) });
          res.end(answer.body);
        })
        .catch(() => res.destroy());
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    client.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return Object.assign(state, { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
}

/** The bus, and the service `posts` acting on PostCreated, each behind a relay; seq 1 delivered already. */
async function system(projection: Projection<Titles> = titles) {
  const toBus = await relay();
  const toService = await relay();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'blog-own-events-'));
  const env = { PORT: '0', EVENT_BUS_URL: toBus.url, LOG_LEVEL: 'silent', EVENT_BUS_TOKEN: '' };
  const service = createService({ name: 'posts', projection }, { env });
  const serviceServer = await service.start();
  toService.target = `http://127.0.0.1:${(serviceServer.address() as AddressInfo).port}`;
  const bus = createBus({
    env: {
      PORT: '0',
      DATA_DIR: dataDir,
      SUBSCRIBERS: `posts=${toService.url}/events`,
      LOG_LEVEL: 'silent',
      RETRY_MAX_MS: '200',
    },
  });
  const busServer = await bus.start();
  toBus.target = `http://127.0.0.1:${(busServer.address() as AddressInfo).port}`;
  cleanups.push(async () => {
    await service.stop();
    await bus.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const subscriber = service.subscriber;
  await waitFor(() => subscriber.caughtUp);
  const loop = bus.deliveries.loops[0]!;
  const publish = (events: object[]) => bus.store.appendMany(events as never) && bus.deliveries.wakeAll();
  publish([{ type: 'PostCreated', data: { id: 'first', title: 'first' } }]);
  await waitFor(() => subscriber.appliedSeq === 1 && loop.types !== undefined);
  /** The seqs the bus delivered to the service. */
  const delivered = () =>
    toService.seen
      .filter((request) => request.method === 'POST')
      .flatMap((request) => [JSON.parse(request.body) as { seq: number } | { seq: number }[]].flat())
      .map((event) => event.seq);
  const post = (title: string) =>
    subscriber.publishAndApply({ type: 'PostCreated', data: { id: title, title } }, (state) => [
      ...state.titles,
    ]);
  /** How many times the service read the log. */
  const logReads = () => toBus.seen.filter((request) => request.method === 'GET').length;
  return { bus, loop, subscriber, toBus, publish, delivered, post, logReads };
}

describe("a service's own events, applied from the publish's answer", () => {
  it('are applied from the answer, after the passed-over seqs, and not delivered back', async () => {
    const { loop, subscriber, publish, delivered, post, logReads } = await system();
    // Events of a type the service skips, passed over by the bus and not yet told
    publish([
      { type: 'Noted', data: {} },
      { type: 'Noted', data: {} },
    ]);
    await waitFor(() => loop.cursor === 3);

    const reads = logReads();
    const created = await post('own');

    // The command answers with its own event applied, read when it was, the seqs before it counted
    expect(created.seq).toBe(4);
    expect(created.view).toEqual(['first', 'own']);
    expect(subscriber.appliedSeq).toBe(4);
    expect(logReads()).toBe(reads);
    // And the next delivery starts after it, from the cursor the bus moved past it
    publish([{ type: 'PostCreated', data: { id: 'later', title: 'later' } }]);
    await waitFor(() => subscriber.state.titles.length === 3);
    expect(subscriber.state.titles).toEqual(['first', 'own', 'later']);
    expect(delivered()).not.toContain(4);
  });

  it("applies a batch answer's events, of several commands, each in its turn", async () => {
    const { subscriber, delivered, post, toBus, logReads } = await system();
    const reads = logReads();
    // Three at once: the first goes alone, the two others wait for it and go together as one array.
    const created = await Promise.all([post('a'), post('b'), post('c')]);

    expect(created.map((result) => result.view)).toEqual([
      ['first', 'a'],
      ['first', 'a', 'b'],
      ['first', 'a', 'b', 'c'],
    ]);
    expect(subscriber.appliedSeq).toBe(4);
    const publishes = toBus.seen.filter((request) => request.method === 'POST');
    expect(publishes.map((request) => request.body.startsWith('['))).toEqual([false, true]);
    expect(delivered()).toEqual([1]);
    expect(logReads()).toBe(reads);
  });

  it('publishes at once the reactions its own events cause, as no delivery will carry them', async () => {
    const noticing = {
      ...titles,
      react: (_state: Titles, event: { type: string }) =>
        event.type === 'PostCreated' ? [{ type: 'PostNoticed', data: {} }] : [],
    };
    const { bus, delivered, post } = await system(noticing);
    const created = await post('own');
    await waitFor(() => bus.store.headSeq() === created.seq + 1);
    const [reaction] = bus.store.after(created.seq, 1);
    expect(reaction).toMatchObject({ type: 'PostNoticed', id: `${created.id}/PostNoticed` });
    expect(delivered()).not.toContain(created.seq);
  });

  it('after a lost answer, is brought up to date from the log by the next delivery', async () => {
    const { loop, subscriber, toBus, publish, post } = await system();
    publish([{ type: 'Noted', data: {} }]);
    await waitFor(() => loop.cursor === 2);
    // Every answer to the publish is lost, the first after the bus stored and passed over the event.
    toBus.cut = (request) => request.method === 'POST';
    await expect(post('lost')).rejects.toMatchObject({ status: 503 });
    toBus.cut = () => false;
    expect(loop.cursor).toBe(3);
    expect(subscriber.appliedSeq).toBeLessThan(3);

    // The next delivery says the bus's cursor is past the service's appliedSeq: it reads the log first
    publish([{ type: 'PostCreated', data: { id: 'next', title: 'next' } }]);
    await waitFor(() => subscriber.appliedSeq === 4);
    expect(subscriber.state.titles).toEqual(['first', 'lost', 'next']);
  });
});
