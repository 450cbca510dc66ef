import http from 'node:http';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, startStack, waitFor } from '../support/stack.js';
import { settlesBefore } from '../support/wait-for.js';
import { createQueryService } from '../../query/src/service.js';

// A real bus delivering to a real query service over HTTP; the tests read GET /posts/live as a browser
// would, from a socket.
let stack: Awaited<ReturnType<typeof startStack>>;
let query: ReturnType<typeof createQueryService>;
let queryUrl: string;
const publish = (type: string, data: object) =>
  request(stack.busUrl).post('/events').send({ type, data }).expect(200);

interface SseMessage {
  event: string;
  data: string;
}

/** Opens the stream and parses what arrives into messages (and comment lines). */
function openStream(url: string) {
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  let ended = false;
  let buffer = '';
  const response = new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.get(url, (res) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message: SseMessage = { event: 'message', data: '' };
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) comments.push(line.slice(1).trim());
            else if (line.startsWith('event: ')) message.event = line.slice(7);
            else if (line.startsWith('data: ')) message.data += line.slice(6);
          }
          if (message.data) messages.push(message);
        }
      });
      res.on('close', () => (ended = true));
      resolve(res);
    });
    req.on('error', reject);
  });
  return {
    response,
    messages,
    comments,
    get ended() {
      return ended;
    },
    close: async () => (await response).destroy(),
  };
}

beforeAll(async () => {
  const port = await freePort();
  queryUrl = `http://127.0.0.1:${port}`;
  stack = await startStack([], { busEnv: { SUBSCRIBERS: `query=${queryUrl}/events` } });
  await publish('PostCreated', { id: 'before', title: 'Written before anyone watched' });
  query = createQueryService({
    env: { PORT: String(port), EVENT_BUS_URL: stack.busUrl, LOG_LEVEL: 'silent' },
    live: { maxClients: 3, heartbeatMs: 200 },
  });
  await query.start();
  await waitFor(() => query.subscriber.appliedSeq >= 1);
});
afterAll(async () => {
  await query?.stop();
  await stack?.stop();
});

describe('GET /posts/live', () => {
  it('answers an event stream with the raw routes’ security and CORS headers, and a snapshot first', async () => {
    const stream = openStream(`${queryUrl}/posts/live`);
    const res = await stream.response;
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(res.headers['cache-control']).toBe('no-cache');
    expect(res.headers['x-accel-buffering']).toBe('no');
    const posts = await request(queryUrl).get('/posts').expect(200);
    for (const name of ['content-security-policy', 'x-content-type-options', 'access-control-allow-origin']) {
      expect(res.headers[name], name).toBe(posts.headers[name]);
    }
    await waitFor(() => stream.messages.length >= 1);
    const [first] = stream.messages;
    expect(first!.event).toBe('snapshot');
    const snapshot = JSON.parse(first!.data);
    expect(snapshot.posts).toEqual(posts.body);
    expect(snapshot.seq).toBe(1);
    expect(snapshot.recent).toEqual([expect.objectContaining({ type: 'PostCreated', seq: 1 })]);
    await stream.close();
  });

  it('pushes each event published through the bus, once applied, as {type, seq, id, time, data}', async () => {
    const stream = openStream(`${queryUrl}/posts/live`);
    await waitFor(() => stream.messages.length >= 1);
    await publish('PostCreated', { id: 'p1', title: 'Live' });
    await publish('CommentCreated', { id: 'c1', content: 'hi', postId: 'p1', status: 'pending' });
    await publish('CommentModerated', { id: 'c1', content: 'hi', postId: 'p1', status: 'approved' });
    await publish('CommentUpdated', { id: 'c1', content: 'hi', postId: 'p1', status: 'approved' });
    await waitFor(() => stream.messages.length >= 5);
    const pushed = stream.messages.slice(1).map((message) => JSON.parse(message.data));
    expect(stream.messages.slice(1).every((message) => message.event === 'message')).toBe(true);
    expect(pushed.map((event) => [event.type, event.seq])).toEqual([
      ['PostCreated', 2],
      ['CommentCreated', 3],
      ['CommentModerated', 4],
      ['CommentUpdated', 5],
    ]);
    expect(pushed[0]).toEqual({
      type: 'PostCreated',
      seq: 2,
      id: expect.any(String),
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      data: { id: 'p1', title: 'Live' },
    });
    // Each event is pushed once query has applied it: GET /posts already shows it.
    expect((await request(queryUrl).get('/posts')).body.p1.comments[0].status).toBe('approved');
    await stream.close();
  });

  it('sends a heartbeat comment while nothing happens', async () => {
    const stream = openStream(`${queryUrl}/posts/live`);
    await waitFor(() => stream.comments.includes('heartbeat'), { timeoutMs: 3000 });
    await stream.close();
  });

  it('refuses more than maxClients streams with a 503 JSON error, and takes new ones once some leave', async () => {
    await waitFor(() => query.live.clientCount === 0);
    const open = [1, 2, 3].map(() => openStream(`${queryUrl}/posts/live`));
    await Promise.all(open.map((stream) => stream.response));
    await waitFor(() => query.live.clientCount === 3);
    const refused = await request(queryUrl).get('/posts/live').expect(503);
    expect(refused.body).toEqual({
      errors: [{ message: expect.stringContaining('Too many live connections') }],
    });
    await open[0]!.close();
    await waitFor(() => query.live.clientCount === 2);
    const again = openStream(`${queryUrl}/posts/live`);
    expect((await again.response).statusCode).toBe(200);
    await Promise.all([...open.slice(1), again].map((stream) => stream.close()));
  });

  it('carries in its snapshot only the latest events, oldest first, once more than it keeps were applied', async () => {
    const port = await freePort();
    const keeping = createQueryService({
      env: { PORT: String(port), EVENT_BUS_URL: stack.busUrl, LOG_LEVEL: 'silent' },
      live: { recentEvents: 3 },
    });
    try {
      // Read at start from the log: the bus delivers to the other query service only.
      for (const id of ['r1', 'r2', 'r3', 'r4']) await publish('PostCreated', { id, title: id });
      await keeping.start();
      const head = Number((await request(stack.busUrl).get('/events?after=0&limit=1')).headers['x-last-seq']);
      await waitFor(() => keeping.subscriber.appliedSeq >= head);
      const stream = openStream(`http://127.0.0.1:${port}/posts/live`);
      await waitFor(() => stream.messages.length >= 1);
      const snapshot = JSON.parse(stream.messages[0]!.data);
      expect(snapshot.recent.map((event: { seq: number }) => event.seq)).toEqual([head - 2, head - 1, head]);
      await stream.close();
    } finally {
      await keeping.stop();
    }
  });

  it('ends the open streams on shutdown instead of waiting for the browsers', async () => {
    const stream = openStream(`${queryUrl}/posts/live`);
    await waitFor(() => stream.messages.length >= 1);
    // Waiting for the browser would never end: the stream is open until it goes.
    await settlesBefore(query.stop(), 15_000, 'query stopping with a stream open');
    await waitFor(() => stream.ended);
  });
});
