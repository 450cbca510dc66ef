/** The latency phase: one comment at a time, from its `201` to its final status in query. */
import { round, sleep } from '../harness.js';
import { inTurn, type Settings, type Targets } from './options.js';
import { REQUEST_TIMEOUT_MS, createPost, post } from './requests.js';
import { distribution, moderated, now, type Distribution } from './stats.js';
import { LiveView, QueryView, type QueryComment } from './views.js';

/**
 * How the latency phase sees a comment become final in query: `push`, from query's live stream
 * (`GET /posts/live`, server-sent events sent as query applies each event: what the client shows), or
 * `poll`, by reading `GET /posts` in a tight loop (the course's only way; the polls are load of their own).
 */
export type Observer = 'push' | 'poll';

export interface LatencyResult {
  observer: Observer;
  settings: Settings['latency'] & { pollIntervalMs: number };
  /** From the 201 of `POST /posts/:id/comments` to the final status visible in query's `GET /posts`. */
  afterCreatedMs: Distribution;
  /** The same, from the moment the POST was sent (so it includes the create itself). */
  fromRequestMs: Distribution;
  /** The POST alone (sent to 201). */
  createMs: Distribution;
  /** `GET /posts` polls per comment, on average. */
  pollsPerSample: number;
  wrongStatus: number;
}

/** One run of the latency phase, start to end: `settings.warmup` comments, then `settings.samples`. */
export async function measureLatency(
  targets: Targets,
  settings: Settings['latency'],
  observer: Observer,
  pollIntervalMs: number,
  onSample?: (sample: WallTimes) => void,
): Promise<LatencyResult> {
  const run = await LatencyRun.open(targets, settings, observer, pollIntervalMs, onSample);
  try {
    await run.comments(settings.warmup, { counted: false });
    await run.comments(settings.samples);
    return run.result();
  } finally {
    run.close();
  }
}

/** Everything the samples of one run gather. */
interface Samples {
  afterCreated: number[];
  fromRequest: number[];
  create: number[];
  wrongStatus: number;
}

/**
 * Comments one at a time through one system, taken in as many turns as asked (`comments`), so that two
 * systems can be measured in alternate blocks: a change of the machine's speed during the run then falls
 * on both alike.
 */
export class LatencyRun {
  private readonly samples: Samples = { afterCreated: [], fromRequest: [], create: [], wrongStatus: 0 };
  private readonly nextPosts: () => string;
  private readonly nextComments: () => string;
  private readonly pollsBefore: number;
  /** Comments made so far, counted or not: it numbers the next one. */
  private made = 0;
  private postId = '';

  private constructor(
    targets: Targets,
    private readonly settings: Settings['latency'],
    private readonly views: QueryView[],
    /** One per query replica when seen pushed; none when polled. */
    private readonly lives: LiveView[],
    private readonly pollIntervalMs: number,
    private readonly onSample?: (sample: WallTimes) => void,
  ) {
    this.nextPosts = inTurn(targets.posts);
    this.nextComments = inTurn(targets.comments);
    this.pollsBefore = this.polls();
  }

  static async open(
    targets: Targets,
    settings: Settings['latency'],
    observer: Observer,
    pollIntervalMs: number,
    onSample?: (sample: WallTimes) => void,
  ): Promise<LatencyRun> {
    const views = targets.query.map((url) => new QueryView(url));
    const lives =
      observer === 'push' ? await Promise.all(targets.query.map((url) => LiveView.connect(url))) : [];
    return new LatencyRun(targets, settings, views, lives, pollIntervalMs, onSample);
  }

  /** `count` more comments, each sent once the one before is final; `counted: false` for a warm-up. */
  async comments(count: number, { counted = true }: { counted?: boolean } = {}): Promise<void> {
    const { settings, views, lives, samples } = this;
    for (let n = 0; n < count; n++) {
      const i = this.made++;
      // A fresh post every so often keeps the observed view small.
      if (i % settings.commentsPerPost === 0)
        this.postId = await createPost(
          { posts: this.nextPosts() },
          `latency ${i / settings.commentsPerPost}`,
        );
      const postId = this.postId;
      const content = i % settings.everyNthOrange === 2 ? `latency ${i}: an orange` : `latency ${i}: fine`;
      const { id, sent, created } = await createComment(this.nextComments(), postId, content);
      // Each sample is read from the next query replica.
      const reader = i % views.length;
      const { status, visible } =
        lives.length > 0
          ? await pushedFinal(lives[reader]!, id, created)
          : await polledFinal(views[reader]!, postId, id, created, this.pollIntervalMs);
      this.onSample?.({ sent: wall(sent), created: wall(created), visible: wall(visible), warmup: !counted });
      if (status !== moderated(content)) samples.wrongStatus++;
      if (counted) {
        samples.afterCreated.push(visible - created);
        samples.fromRequest.push(visible - sent);
        samples.create.push(created - sent);
      }
    }
  }

  /** What the counted comments measured. */
  result(): LatencyResult {
    const { samples } = this;
    return {
      observer: this.lives.length > 0 ? 'push' : 'poll',
      settings: { ...this.settings, pollIntervalMs: this.pollIntervalMs },
      afterCreatedMs: distribution(samples.afterCreated),
      fromRequestMs: distribution(samples.fromRequest),
      createMs: distribution(samples.create),
      pollsPerSample: round((this.polls() - this.pollsBefore) / Math.max(1, this.made), 1),
      wrongStatus: samples.wrongStatus,
    };
  }

  close(): void {
    for (const live of this.lives) live.close();
  }

  private polls(): number {
    return this.views.reduce((sum, view) => sum + view.polls, 0);
  }
}

/** `POST /posts/:id/comments`: the new comment's id, and when the POST was sent and its 201 arrived. */
async function createComment(
  commentsUrl: string,
  postId: string,
  content: string,
): Promise<{ id: string; sent: number; created: number }> {
  const sent = now();
  const reply = await post(`${commentsUrl}/posts/${postId}/comments`, { content });
  const created = now();
  if (reply.status !== 201)
    throw new Error(`POST ${commentsUrl}/posts/${postId}/comments answered ${reply.status}: ${reply.body}`);
  const comments = JSON.parse(reply.body) as QueryComment[];
  const id = comments.find((c) => c.content === content)?.id;
  if (!id) throw new Error(`the 201 of POST /posts/${postId}/comments does not list the new comment`);
  return { id, sent, created };
}

/**
 * Pushed: query's stream says when it applied the comment's CommentUpdated (perhaps even before the 201
 * reached us, which counts as 0).
 */
async function pushedFinal(
  live: LiveView,
  id: string,
  created: number,
): Promise<{ status: string | undefined; visible: number }> {
  const pushed = await live.finalStatus(id, REQUEST_TIMEOUT_MS);
  return { status: pushed.status, visible: Math.max(pushed.at, created) };
}

/** Polled: a sequential loop on GET /posts until the comment's final status shows. */
async function polledFinal(
  view: QueryView,
  postId: string,
  id: string,
  created: number,
  pollIntervalMs: number,
): Promise<{ status: string | undefined; visible: number }> {
  const deadline = created + REQUEST_TIMEOUT_MS;
  for (;;) {
    if (await view.poll()) {
      const status = view.posts[postId]?.comments.find((c) => c.id === id)?.status;
      if (status !== undefined && status !== 'pending') return { status, visible: now() };
    }
    if (now() > deadline)
      throw new Error(`comment ${id} was not final in query after ${REQUEST_TIMEOUT_MS} ms`);
    if (pollIntervalMs > 0) await sleep(pollIntervalMs);
  }
}

/** One latency sample on the wall clock (ms since the epoch), to line up with the services' log times. */
export interface WallTimes {
  sent: number;
  created: number;
  visible: number;
  warmup: boolean;
}

const wall = (monotonic: number) => performance.timeOrigin + monotonic;
