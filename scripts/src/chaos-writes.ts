import type { AckedComment, AckedPost } from './chaos-check.js';
import { send, type Random } from './harness.js';
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
}

/**
 * Posts and comments at up to `rate` per second until the deadline: one in five a new post, half of those
 * commented on at once (a post created moments ago), the other comments on a recent or a random post, one
 * in three containing "orange". Only a 201 counts as acknowledged.
 */
export async function writeUntil(system: System, random: Random, rate: number, deadline: number) {
  const tally: WriteTally = {
    attempted: 0,
    posts: [],
    comments: [],
    notAcknowledged: {},
    resentAfterRefused: 0,
    answersWithoutTheirComment: 0,
  };
  let n = 0;
  let inFlight = 0;

  const attempt = async (url: string, body: object) => {
    for (let tries = 0; ; tries++) {
      const answer = await send(url, body, WRITE_TIMEOUT_MS);
      if (answer.error !== 'ECONNREFUSED' || tries >= REFUSED_RETRIES || Date.now() > deadline) return answer;
      tally.resentAfterRefused++;
      await delay(200);
    }
  };
  const refuse = (why: string) => (tally.notAcknowledged[why] = (tally.notAcknowledged[why] ?? 0) + 1);

  const createComment = async (postId: string) => {
    tally.attempted++;
    const content = `c${n++} ${random.chance(1 / 3) ? 'about an orange' : 'a fine one'}`;
    const answer = await attempt(`${system.urls.comments}/posts/${postId}/comments`, { content });
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
    const answer = await attempt(`${system.urls.posts}/posts/create`, { title });
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

/**
 * A refused write may be a network error or a 503 (the bus or a service down: try again); any other status
 * (a 500, a 404 for a post that was acknowledged) is a bug, and counts as a discrepancy.
 */
export function unexpectedAnswers(notAcknowledged: Record<string, number>): string[] {
  return Object.entries(notAcknowledged)
    .filter(([why]) => /^\d+$/.test(why) && why !== '503')
    .map(([status, n]) => `${n} writes answered ${status}`);
}
