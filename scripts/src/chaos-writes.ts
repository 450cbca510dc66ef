import type { AckedComment, AckedPost } from './chaos-check.js';
import { send, type Answer, type Random } from './harness.js';
import { delay } from '@blog/common/process';
import type { System } from './process/system-types.js';

/** Writes in flight at once, at most: the rate is a ceiling, not a promise, on a busy machine. */
const MAX_IN_FLIGHT = 8;
/** A write refused before it reached the service (ECONNREFUSED) changed nothing: it is sent again. */
const REFUSED_RETRIES = 5;
const WRITE_TIMEOUT_MS = 5000;

export interface WriteTally {
  attempted: number;
  posts: AckedPost[];
  comments: AckedComment[];
  /** Writes without a 201, by why: the status answered, or the network error. */
  notAcknowledged: Record<string, number>;
  /** Sends repeated after ECONNREFUSED (the request never reached a process). */
  resentAfterRefused: number;
  /** 201 answers whose comments array lacked the new comment: the course's contract broken. */
  answersWithoutTheirComment: number;
  /** Every answer, writes and reads, by route then status (or network error). */
  answers: Record<string, Record<string, number>>;
}

/** Counts one answer of a route: its status, or the network error when none came. */
function count(tally: Pick<WriteTally, 'answers'>, route: string, answer: Answer): void {
  const why = answer.status ? String(answer.status) : (answer.error ?? 'no answer');
  const byStatus = (tally.answers[route] ??= {});
  byStatus[why] = (byStatus[why] ?? 0) + 1;
}

/** The replicas of a service in turn, so that writes reach every one of them. */
function inTurn(urls: () => readonly { url: string }[]): () => string {
  let next = 0;
  return () => {
    const list = urls();
    return list[next++ % list.length]!.url;
  };
}

/**
 * Posts and comments at up to `rate` per second until the deadline: one in five a new post, half of those
 * commented on at once (a post created moments ago), the other comments on a recent or a random post, one
 * in three containing "orange"; each to the next replica of posts or comments. Only a 201 counts as
 * acknowledged.
 */
export async function writeUntil(system: System, random: Random, rate: number, deadline: number) {
  const tally: WriteTally = {
    attempted: 0,
    posts: [],
    comments: [],
    notAcknowledged: {},
    resentAfterRefused: 0,
    answersWithoutTheirComment: 0,
    answers: {},
  };
  let n = 0;
  let inFlight = 0;
  const postsUrl = inTurn(() => system.replicas.posts);
  const commentsUrl = inTurn(() => system.replicas.comments);

  const attempt = async (route: string, url: string, body: object) => {
    for (let tries = 0; ; tries++) {
      const answer = await send(url, body, WRITE_TIMEOUT_MS);
      count(tally, route, answer);
      if (answer.error !== 'ECONNREFUSED' || tries >= REFUSED_RETRIES || Date.now() > deadline) return answer;
      tally.resentAfterRefused++;
      await delay(200);
    }
  };
  const refuse = (why: string) => (tally.notAcknowledged[why] = (tally.notAcknowledged[why] ?? 0) + 1);

  const createComment = async (postId: string) => {
    tally.attempted++;
    const content = `c${n++} ${random.chance(1 / 3) ? 'about an orange' : 'a fine one'}`;
    const url = `${commentsUrl()}/posts/${postId}/comments`;
    const answer = await attempt('POST /posts/:id/comments', url, { content });
    if (answer.status !== 201) return refuse(String(answer.status || answer.error));
    const created = (JSON.parse(answer.body) as { id: string; content: string }[]).find(
      (c) => c.content === content,
    );
    if (created) tally.comments.push({ id: created.id, postId, content });
    else tally.answersWithoutTheirComment++;
  };

  const createPost = async () => {
    tally.attempted++;
    const title = `post ${n++}`;
    const answer = await attempt('POST /posts/create', `${postsUrl()}/posts/create`, { title });
    if (answer.status !== 201) return refuse(String(answer.status || answer.error));
    const post = JSON.parse(answer.body) as AckedPost;
    tally.posts.push(post);
    if (random.chance(0.5)) await createComment(post.id);
  };

  const oneWrite = () => {
    const posts = tally.posts;
    if (posts.length === 0 || random.chance(0.2)) return createPost();
    const recent = random.chance(0.5);
    const post = recent
      ? posts[posts.length - 1 - Math.floor(random.next() * Math.min(3, posts.length))]!
      : random.pick(posts);
    return createComment(post.id);
  };

  const writes: Promise<unknown>[] = [];
  while (Date.now() < deadline) {
    if (inFlight < MAX_IN_FLIGHT) {
      inFlight++;
      writes.push(oneWrite().finally(() => inFlight--));
    }
    await delay(1000 / rate);
  }
  await Promise.all(writes);
  return tally;
}

const READ_EVERY_MS = 250;

/**
 * Reads what a browser reads, query's `GET /posts`, from each query replica in turn until the deadline,
 * counting the answers in `tally.answers` (under `GET /posts`).
 */
export async function readUntil(system: System, tally: Pick<WriteTally, 'answers'>, deadline: number) {
  const queryUrl = inTurn(() => system.replicas.query);
  while (Date.now() < deadline) {
    count(tally, 'GET /posts', await send(`${queryUrl()}/posts`, undefined, WRITE_TIMEOUT_MS));
    await delay(READ_EVERY_MS);
  }
}

/**
 * A refused write may be a network error or a 503 (the bus or a service down: try again); any other status
 * (a 500, a 404 for a post that was acknowledged) is a bug, and counts as a discrepancy. So is a read
 * answered anything but 200 or 503.
 */
export function unexpectedAnswers(tally: Pick<WriteTally, 'notAcknowledged' | 'answers'>): string[] {
  const writes = Object.entries(tally.notAcknowledged)
    .filter(([why]) => /^\d+$/.test(why) && why !== '503')
    .map(([status, n]) => `${n} writes answered ${status}`);
  const reads = Object.entries(tally.answers['GET /posts'] ?? {})
    .filter(([why]) => /^\d+$/.test(why) && why !== '200' && why !== '503')
    .map(([status, n]) => `${n} reads of query answered ${status}`);
  return [...writes, ...reads];
}
