/** The long log the start-up phase has query read: in the bus's SQLite store, or in a JetStream stream. */
import { randomUUID } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { NatsTransport } from '@blog/common';
import { startNatsServer } from '@blog/common/nats-server';
import { EventStore } from '@blog/event-bus/store';
import { mulberry32 } from '../harness.js';
import { moderated } from './stats.js';

/** A type, not an interface: it then fits the transport's `OutgoingEvent` (an index signature). */
export type LogEventIn = {
  type: string;
  data: Record<string, unknown>;
  id: string;
};

export interface BuiltLog {
  posts: number;
  comments: number;
  rejected: number;
}

/**
 * A realistic log of `events` events, handed to `append` in order: posts, and per comment its
 * CommentCreated, CommentModerated and CommentUpdated (ids as the services derive them), comments spread
 * over the posts created so far, one in five rejected.
 */
export function realisticLog(events: number, append: (event: LogEventIn) => void): BuiltLog {
  const comments = Math.floor((events - Math.round(events / 100)) / 3);
  const posts = events - 3 * comments;
  const random = mulberry32(42);
  const hex = (n: number) => n.toString(16).padStart(8, '0');
  let rejected = 0;
  let postsMade = 0;
  const newPost = () => {
    const id = hex(postsMade++);
    append({ type: 'PostCreated', data: { id, title: `Post number ${postsMade}` }, id: randomUUID() });
  };
  newPost();
  for (let c = 0; c < comments; c++) {
    // The posts appear at an even pace among the comments.
    while (postsMade < posts && postsMade <= (c * posts) / comments) newPost();
    const postId = hex(Math.floor(random() * postsMade));
    const id = `c${hex(c)}`;
    const content = c % 5 === 2 ? `comment ${c} about an orange` : `comment ${c}, a fine one`;
    const status = moderated(content);
    if (status === 'rejected') rejected++;
    const createdId = randomUUID();
    append({ type: 'CommentCreated', data: { id, content, postId, status: 'pending' }, id: createdId });
    const moderatedId = `${createdId}/CommentModerated`;
    append({ type: 'CommentModerated', data: { id, postId, status, content }, id: moderatedId });
    append({
      type: 'CommentUpdated',
      data: { id, status, postId, content },
      id: `${moderatedId}/CommentUpdated`,
    });
  }
  while (postsMade < posts) newPost();
  return { posts, comments, rejected };
}

/** The log in the bus's SQLite store, written with the bus's own store module in one transaction. */
export function buildLog(dataDir: string, events: number): BuiltLog & { databaseBytes: number } {
  const store = new EventStore(dataDir);
  let built: BuiltLog;
  try {
    const all: LogEventIn[] = [];
    built = realisticLog(events, (event) => all.push(event));
    store.appendMany(all);
    const head = store.headSeq();
    if (head !== events) throw new Error(`the built log holds ${head} events, not ${events}`);
    // The bus has already delivered all of it to query (as after a restart of query): it delivers nothing old.
    store.setCursor('query', head);
  } finally {
    store.close();
  }
  // Measured once closed, when SQLite has moved its write-ahead log into the file.
  return { ...built, databaseBytes: statSync(store.file).size };
}

/** Every file's size under `dir`, in bytes. */
function bytesUnder(dir: string): number {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .reduce((sum, entry) => sum + statSync(path.join(entry.parentPath, entry.name)).size, 0);
}

/**
 * The log in a JetStream stream on a nats-server of its own (store in `<dataDir>/nats`), published through
 * the services' own NatsTransport, a thousand at a time (pipelined on one connection, stored in order).
 */
export async function buildStream(dataDir: string, events: number) {
  const storeDir = path.join(dataDir, 'nats');
  const server = await startNatsServer({ storeDir });
  const stream = 'blog';
  const transport = new NatsTransport({ url: server.url, stream, timeoutMs: 30_000 });
  try {
    const all: LogEventIn[] = [];
    const log = realisticLog(events, (event) => all.push(event));
    for (let i = 0; i < all.length; i += 1000) {
      await Promise.all(all.slice(i, i + 1000).map((event) => transport.publish(event)));
    }
    const head = await transport.headSeq();
    if (head !== events) throw new Error(`the built stream holds ${head} events, not ${events}`);
    return { log, server, stream, bytes: bytesUnder(storeDir) };
  } catch (err) {
    await server.stop();
    throw err;
  } finally {
    await transport.close();
  }
}
