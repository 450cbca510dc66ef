/**
 * One process of the floor (floor.ts): the comment's way through the system, done by bare `node:http` and
 * `ws` processes that store nothing, validate nothing and log nothing. Each runs this module with its part:
 *
 *   node floor-chain.js '{"part":"bus","port":4000,"subscribers":[{"name":"comments","url":"http://..."}]}'
 *
 * The event path travels as the system's does when the server accepts the upgrade: over one long-lived
 * WebSocket per (client, server) pair on `/events`, one text message each way per exchange (the framing is
 * below, `frame`); each part answers `POST /events` too, by the same function.
 *
 * - `comments` takes `POST /posts/:id/comments`, publishes a CommentCreated to the bus over its socket,
 *   naming itself (publishes made while one is on its way go together in the next one, as the services'
 *   transport does) and answers 201 once it has that event (read your writes): from the publish's answer when the
 *   bus says it passed over it, else when the bus delivers it back; it turns each CommentModerated into a
 *   CommentUpdated, returned in its answer to the delivery. `POST /posts/create` gives a post id (set-up
 *   only: no event).
 * - `bus` numbers what is published and delivers to each subscriber only the types it acts on, one loop
 *   per subscriber over its socket to that subscriber (one delivery at a time, all that waits in one array
 *   of up to 200), and takes the reactions
 *   a subscriber returns in its answer as published. A publisher's own events are passed over in its loop
 *   when that loop is idle at the head, as the bus does (docs/event-bus.md, "A publisher's own events").
 * - `moderation` returns a CommentModerated for each CommentCreated (rejected if it mentions an orange).
 * - `query` writes each event it is delivered to its `GET /posts/live` streams (server-sent events, the
 *   way query pushes), and keeps the comments' statuses for `GET /posts`, so the bench's harness reads it
 *   as it reads query.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';

/** The processes of the floor, in the order a comment goes through them. */
export const FLOOR_PARTS = ['comments', 'event-bus', 'moderation', 'query'] as const;
export type FloorPart = (typeof FLOOR_PARTS)[number];

/** The types each subscriber acts on, as the services list them: what the bus delivers to each at once. */
export const FLOOR_SUBSCRIBERS: Record<Exclude<FloorPart, 'event-bus'>, readonly string[]> = {
  comments: ['CommentCreated', 'CommentModerated'],
  moderation: ['CommentCreated'],
  query: ['CommentCreated', 'CommentUpdated'],
};

/**
 * A comment's exchanges between processes, on the floor as in the system on the HTTP bus: the POST (HTTP),
 * then the publish and one delivery per subscriber acting on each of its three events but comments' own
 * CommentCreated, applied from the publish's answer (2 + 1 + 1, the reactions riding in the answers), each
 * a request and its answer over the one WebSocket of its (client, server) pair; and query's two pushes
 * (pending, then final) on the live stream.
 */
export const FLOOR_EXCHANGES = { requests: 6, pushes: 2 } as const;

export interface FloorConfig {
  part: FloorPart;
  port: number;
  /** comments: where it publishes. */
  busUrl?: string;
  /** bus: where it delivers. */
  subscribers?: { name: string; url: string }[];
}

interface FloorEvent {
  seq?: number;
  id: string;
  type: string;
  data: { id: string; postId: string; content: string; status: string };
}

/** The most events in one publish or one delivery, as on the bus. */
const MAX_BATCH = 200;
const RETRY_MS = 100;

/** An answer to `POST /events`, by HTTP or over the socket. */
interface Exchange {
  status: number;
  headers: Record<string, string>;
  body: string;
}
/** What a part does with a publish or a delivery: the same on both paths. */
type EventsHandler = (headers: Record<string, string | string[] | undefined>, body: string) => Exchange;

/**
 * The framing on the socket: one text message each way per exchange, its head as JSON on the first line
 * (`{"ref":N,"headers":{...}}`, answered by `{"ref":N,"status":S,"headers":{...}}`, header names in lower
 * case), then the exact body the POST or its answer would carry.
 */
const frame = (head: object, body: string) => `${JSON.stringify(head)}\n${body}`;
function unframe<Head>(data: { toString(): string }): { head: Head; body: string } {
  const text = data.toString();
  const newline = text.indexOf('\n');
  return { head: JSON.parse(text.slice(0, newline)) as Head, body: text.slice(newline + 1) };
}

/**
 * A client's one socket to a server's `/events`, opened at the first exchange and again after it closes
 * (what was waiting on it fails). Each exchange is sent again until it is answered 2xx (nothing
 * acknowledged is lost on the floor either); each failure is written to stderr, which the bench shows in
 * its progress.
 */
function eventsSocket(baseUrl: string) {
  const url = `${baseUrl.replace(/^http/, 'ws')}/events`;
  type Waiting = { resolve: (answer: Exchange) => void; reject: (err: Error) => void };
  let opening: Promise<{ socket: WebSocket; waiting: Map<number, Waiting> }> | undefined;
  let ref = 0;
  const open = () =>
    (opening ??= new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { perMessageDeflate: false });
      const waiting = new Map<number, Waiting>();
      socket.on('open', () => resolve({ socket, waiting }));
      socket.on('message', (data) => {
        const { head, body } = unframe<{ ref: number; status: number; headers: Record<string, string> }>(
          data,
        );
        waiting.get(head.ref)?.resolve({ status: head.status, headers: head.headers, body });
        waiting.delete(head.ref);
      });
      socket.on('error', (err) => reject(err));
      socket.on('close', () => {
        opening = undefined;
        reject(new Error(`${url} closed`));
        for (const { reject: fail } of waiting.values()) fail(new Error(`${url} closed`));
        waiting.clear();
      });
    }));
  const exchange = async (headers: Record<string, string>, body: string) => {
    const { socket, waiting } = await open();
    const id = ++ref;
    return new Promise<Exchange>((resolve, reject) => {
      waiting.set(id, { resolve, reject });
      socket.send(frame({ ref: id, headers }, body));
    });
  };
  return async (headers: Record<string, string>, body: string): Promise<Exchange> => {
    for (;;) {
      try {
        const reply = await exchange(headers, body);
        if (reply.status >= 200 && reply.status < 300) return reply;
        process.stderr.write(`${url} answered ${reply.status}: ${reply.body.slice(0, 200)}\n`);
      } catch (err) {
        process.stderr.write(`${url} failed: ${(err as Error).message}\n`);
      }
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  };
}

type Handler = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void;

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

const json = (status: number, value: unknown, headers?: Record<string, string>): Exchange => ({
  status,
  headers: { 'content-type': 'application/json', ...headers },
  body: JSON.stringify(value),
});

function send(res: http.ServerResponse, { status, headers, body }: Exchange): void {
  res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const answer = (res: http.ServerResponse, status: number, value: unknown) => send(res, json(status, value));

/**
 * A node:http server on 127.0.0.1; `GET /readyz` answers 200, anything unrouted 404. `events` answers
 * `POST /events` and each message on a socket upgraded on `/events`.
 */
function serve(
  port: number,
  events: EventsHandler,
  routes: Record<string, Handler> = {},
  prefixes: [string, Handler][] = [],
): void {
  const routed: Record<string, Handler> = {
    ...routes,
    'POST /events': (req, body, res) => send(res, events(req.headers, body)),
  };
  const server = http.createServer((req, res) => {
    const key = `${req.method} ${req.url}`;
    if (key === 'GET /readyz') return answer(res, 200, { ready: true });
    const handler = routed[key] ?? prefixes.find(([prefix]) => key.startsWith(prefix))?.[1];
    if (!handler) return answer(res, 404, { errors: [{ message: 'Not found' }] });
    readBody(req).then(
      (body) => handler(req, body, res),
      () => res.destroy(),
    );
  });
  const sockets = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  server.on('upgrade', (req, socket, head) => {
    if (req.url !== '/events') return socket.destroy();
    sockets.handleUpgrade(req, socket, head, (ws) =>
      ws.on('message', (data) => {
        const request = unframe<{ ref: number; headers: Record<string, string> }>(data);
        const { status, headers, body } = events(request.head.headers, request.body);
        ws.send(frame({ ref: request.head.ref, status, headers }, body));
      }),
    );
  });
  server.keepAliveTimeout = 65_000; // as the services (common/src/http.ts)
  server.listen(port, '127.0.0.1');
}

/** A delivery: the events as an array; the answer carries the reactions. */
function deliveryAnswer(react: (events: FloorEvent[]) => FloorEvent[]): EventsHandler {
  return (_headers, body) => {
    const reactions = react(JSON.parse(body) as FloorEvent[]);
    return json(200, reactions.length > 0 ? { events: reactions } : {});
  };
}

const reaction = (trigger: FloorEvent, type: string, status: string): FloorEvent => ({
  id: `${trigger.id}/${type}`,
  type,
  data: { ...trigger.data, status },
});

function runBus({ port, subscribers = [] }: FloorConfig): void {
  const log: FloorEvent[] = [];
  const loops = subscribers.map((subscriber) => ({
    ...subscriber,
    types: new Set(FLOOR_SUBSCRIBERS[subscriber.name as keyof typeof FLOOR_SUBSCRIBERS] ?? []),
    exchange: eventsSocket(subscriber.url),
    next: 0,
    sending: false,
  }));
  /**
   * Numbers the events and wakes the loops; the publisher's loop first passes over them if it is idle at
   * the head (the floor's comments applies every delivery at once, so it is never behind its loop): then
   * the seq before them, for the answer.
   */
  const append = (events: FloorEvent[], publisher?: string) => {
    const first = log.length + 1;
    for (const event of events) log.push({ ...event, seq: log.length + 1 });
    const own = loops.find((loop) => loop.name === publisher && !loop.sending && loop.next === first - 1);
    if (own) own.next = log.length;
    for (const loop of loops) void deliver(loop);
    return own ? first - 1 : undefined;
  };
  /** Everything after the loop's cursor that it acts on, one delivery at a time over its socket. */
  const deliver = async (loop: (typeof loops)[number]) => {
    if (loop.sending) return;
    loop.sending = true;
    for (;;) {
      const batch: FloorEvent[] = [];
      while (loop.next < log.length && batch.length < MAX_BATCH) {
        const event = log[loop.next++]!;
        if (loop.types.has(event.type)) batch.push(event);
      }
      if (batch.length === 0) break;
      const reply = await loop.exchange({}, JSON.stringify(batch));
      const reactions = (JSON.parse(reply.body) as { events?: FloorEvent[] }).events;
      if (reactions) append(reactions);
    }
    loop.sending = false;
  };
  serve(port, (headers, body) => {
    const parsed = JSON.parse(body) as FloorEvent | FloorEvent[];
    const events = Array.isArray(parsed) ? parsed : [parsed];
    const first = log.length + 1;
    const passed = append(events, headers['x-events-publisher'] as string | undefined);
    const answered = passed === undefined ? undefined : { 'x-events-passed-through': String(passed) };
    return json(201, { events: events.map((event, i) => ({ seq: first + i, id: event.id })) }, answered);
  });
}

function runComments({ port, busUrl }: FloorConfig): void {
  const publish = eventsSocket(busUrl!);
  const delivered = new Map<string, () => void>();
  const waiting: { id: string; json: string }[] = [];
  let publishing = false;
  let appliedSeq = 0;
  const applied = (event: { id: string; seq?: number }) => {
    appliedSeq = Math.max(appliedSeq, event.seq ?? 0);
    delivered.get(event.id)?.();
    delivered.delete(event.id);
  };
  /** One publish at a time, naming this subscriber; what waits meanwhile goes together next. */
  const publishWaiting = async () => {
    publishing = true;
    while (waiting.length > 0) {
      const group = waiting.splice(0, MAX_BATCH);
      const headers = { 'x-events-publisher': 'comments', 'x-events-applied': String(appliedSeq) };
      const body = `[${group.map((event) => event.json).join(',')}]`;
      const reply = await publish(headers, body);
      // Passed over: the events are this service's own, applied from the answer.
      if (reply.headers['x-events-passed-through'] === undefined) continue;
      const stored = (JSON.parse(reply.body) as { events: { seq: number }[] }).events;
      group.forEach((event, index) => applied({ id: event.id, seq: stored[index]!.seq }));
    }
    publishing = false;
  };
  const createComment: Handler = (req, body, res) => {
    const postId = req.url!.split('/')[2]!;
    const { content } = JSON.parse(body) as { content: string };
    const comment = { id: randomUUID(), postId, content, status: 'pending' };
    const event: FloorEvent = { id: randomUUID(), type: 'CommentCreated', data: comment };
    delivered.set(event.id, () => answer(res, 201, [{ id: comment.id, content, status: 'pending' }]));
    waiting.push({ id: event.id, json: JSON.stringify(event) });
    if (!publishing) void publishWaiting();
  };
  serve(
    port,
    deliveryAnswer((events) =>
      events.flatMap((event) => {
        applied(event);
        return event.type === 'CommentModerated'
          ? [reaction(event, 'CommentUpdated', event.data.status)]
          : [];
      }),
    ),
    {
      'POST /posts/create': (_req, body, res) =>
        answer(res, 201, { id: randomUUID(), title: (JSON.parse(body) as { title: string }).title }),
    },
    [['POST /posts/', createComment]],
  );
}

function runModeration({ port }: FloorConfig): void {
  serve(
    port,
    deliveryAnswer((events) =>
      events.map((event) =>
        reaction(event, 'CommentModerated', event.data.content.includes('orange') ? 'rejected' : 'approved'),
      ),
    ),
  );
}

function runQuery({ port }: FloorConfig): void {
  const streams = new Set<http.ServerResponse>();
  const posts: Record<string, { id: string; title: string; comments: FloorEvent['data'][] }> = {};
  const comments = new Map<string, FloorEvent['data']>();
  serve(
    port,
    deliveryAnswer((events) => {
      for (const event of events) {
        const known = comments.get(event.data.id);
        if (known) known.status = event.data.status;
        else {
          const comment = { ...event.data };
          comments.set(comment.id, comment);
          const post = (posts[comment.postId] ??= { id: comment.postId, title: '', comments: [] });
          post.comments.push(comment);
        }
        const message = `data: ${JSON.stringify({ type: event.type, seq: event.seq, id: event.id, data: event.data })}\n\n`;
        for (const stream of streams) stream.write(message);
      }
      return [];
    }),
    {
      'GET /posts': (_req, _body, res) => answer(res, 200, posts),
      'GET /posts/live': (req, _body, res) => {
        res.writeHead(200, {
          'content-type': 'text/event-stream; charset=utf-8',
          'cache-control': 'no-cache',
        });
        res.write('event: snapshot\ndata: {}\n\n');
        streams.add(res);
        req.on('close', () => streams.delete(res));
      },
    },
  );
}

const PARTS: Record<FloorPart, (config: FloorConfig) => void> = {
  comments: runComments,
  'event-bus': runBus,
  moderation: runModeration,
  query: runQuery,
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const config = JSON.parse(process.argv[2]!) as FloorConfig;
  PARTS[config.part](config);
}
