/**
 * The verdict of `npm run chaos`: what the acknowledged writes imply, compared with what the bus's log and
 * every replica's view hold once the system is quiet. Pure, so it is unit-tested with fabricated views.
 */

export interface AckedPost {
  id: string;
  title: string;
}

export interface AckedComment {
  id: string;
  postId: string;
  content: string;
}

export interface LogEvent {
  seq: number;
  id: string;
  type: string;
  data: { id?: unknown; status?: unknown; content?: unknown; postId?: unknown };
}

interface ViewComment {
  id: string;
  content: string;
  status: string;
}

export type QueryView = Record<string, { id: string; title: string; comments: ViewComment[] }>;
export type PostsView = Record<string, { id: string; title: string }>;
/** Comments by post id. */
export type CommentsView = Record<string, ViewComment[]>;

/** Each view is by replica (`query`, or `query-0`, `query-1`...). */
export interface Observed {
  /** The bus's whole log, `GET /events`. */
  events: LogEvent[];
  /** query's `GET /posts`. */
  query: Record<string, QueryView>;
  /** posts' `GET /posts`. */
  posts: Record<string, PostsView>;
  /** comments' `GET /posts/:id/comments`, for every post of the log. */
  comments: Record<string, CommentsView>;
  /** The bus's `GET /dead-letters`. */
  deadLetters: unknown[];
}

export interface Expected {
  posts: AckedPost[];
  comments: AckedComment[];
}

/** The course's moderation rule. */
export const finalStatus = (content: string) => (content.includes('orange') ? 'rejected' : 'approved');

/** Every way the observed system departs from what the acknowledged writes imply, one line each. */
export function findDiscrepancies(expected: Expected, observed: Observed): string[] {
  return [
    ...checkLog(observed.events),
    ...checkPosts(expected.posts, observed),
    ...checkComments(expected.comments, observed),
    ...checkNothingPending(observed),
    ...checkAgreement(observed),
    ...observed.deadLetters.map((letter) => `dead letter: ${JSON.stringify(letter).slice(0, 300)}`),
  ];
}

/** Ids unique, seqs 1..n, and per post / comment exactly one event of each kind it should have. */
function checkLog(events: LogEvent[]): string[] {
  const problems: string[] = [];
  const seenIds = new Set<string>();
  events.forEach((event, index) => {
    if (event.seq !== index + 1) problems.push(`log: event #${index + 1} has seq ${event.seq}`);
    if (seenIds.has(event.id)) problems.push(`log: event id ${event.id} appears twice`);
    seenIds.add(event.id);
  });
  const count = countByTypeAndTarget(events);
  for (const [postId, n] of count('PostCreated')) {
    if (n !== 1) problems.push(`log: post ${postId} has ${n} PostCreated events`);
  }
  const created = count('CommentCreated');
  for (const [commentId, n] of created) {
    if (n !== 1) problems.push(`log: comment ${commentId} has ${n} CommentCreated events`);
  }
  for (const type of ['CommentModerated', 'CommentUpdated']) {
    const counted = count(type);
    for (const commentId of new Set([...created.keys(), ...counted.keys()])) {
      const n = counted.get(commentId) ?? 0;
      if (n !== 1) problems.push(`log: comment ${commentId} has ${n} ${type} events`);
    }
  }
  for (const event of events) {
    if (event.type !== 'CommentModerated' && event.type !== 'CommentUpdated') continue;
    const want = finalStatus(String(event.data.content));
    if (event.data.status !== want) {
      problems.push(`log: ${event.type} of ${String(event.data.id)} says ${String(event.data.status)}`);
    }
  }
  return problems;
}

function countByTypeAndTarget(events: LogEvent[]) {
  return (type: string): Map<string, number> => {
    const counts = new Map<string, number>();
    for (const event of events) {
      if (event.type !== type) continue;
      const target = String(event.data.id);
      counts.set(target, (counts.get(target) ?? 0) + 1);
    }
    return counts;
  };
}

/** Every acknowledged post in every view, with its title; and no post in a view that the log lacks. */
function checkPosts(acked: AckedPost[], observed: Observed): string[] {
  const problems: string[] = [];
  const views = [...Object.entries(observed.posts), ...Object.entries(observed.query)];
  for (const post of acked) {
    for (const [view, posts] of views) {
      if (posts[post.id]?.title !== post.title) problems.push(`${view}: post ${post.id} missing`);
    }
  }
  const inLog = new Set(
    observed.events.filter((e) => e.type === 'PostCreated').map((e) => String(e.data.id)),
  );
  for (const [view, posts] of views) {
    for (const id of Object.keys(posts))
      if (!inLog.has(id)) problems.push(`${view}: post ${id} is not in the log`);
  }
  return problems;
}

/** Every acknowledged comment exactly once, under its post, with its content and final status, in every view. */
function checkComments(acked: AckedComment[], observed: Observed): string[] {
  const problems: string[] = [];
  const views = [
    ...Object.entries(observed.query).map(
      ([view, posts]) => [view, (id: string) => posts[id]?.comments] as const,
    ),
    ...Object.entries(observed.comments).map(([view, byPost]) => [view, (id: string) => byPost[id]] as const),
  ];
  for (const comment of acked) {
    const want = { id: comment.id, content: comment.content, status: finalStatus(comment.content) };
    for (const [view, commentsOf] of views) {
      const found = (commentsOf(comment.postId) ?? []).filter((c) => c.id === comment.id);
      if (found.length !== 1) {
        problems.push(`${view}: comment ${comment.id} on post ${comment.postId} found ${found.length} times`);
      } else if (found[0]!.content !== want.content || found[0]!.status !== want.status) {
        problems.push(
          `${view}: comment ${comment.id} is ${JSON.stringify(found[0])}, expected ${JSON.stringify(want)}`,
        );
      }
    }
  }
  const createdInLog = observed.events.filter((e) => e.type === 'CommentCreated').length;
  for (const [view, posts] of Object.entries(observed.query)) {
    const inQuery = Object.values(posts).reduce((sum, post) => sum + post.comments.length, 0);
    if (inQuery !== createdInLog) {
      problems.push(`${view}: ${inQuery} comments in all, the log created ${createdInLog}`);
    }
  }
  return problems;
}

/** Acknowledged or not, every comment the log holds must have reached its final status everywhere. */
function checkNothingPending(observed: Observed): string[] {
  const problems: string[] = [];
  for (const [view, posts] of Object.entries(observed.query)) {
    for (const post of Object.values(posts)) {
      for (const c of post.comments)
        if (c.status === 'pending') problems.push(`${view}: comment ${c.id} pending`);
    }
  }
  for (const [view, byPost] of Object.entries(observed.comments)) {
    for (const list of Object.values(byPost)) {
      for (const c of list) if (c.status === 'pending') problems.push(`${view}: comment ${c.id} pending`);
    }
  }
  return problems;
}

/** The replicas of a service hold the same view, post by post (at most 5 differences named per replica). */
function checkAgreement(observed: Observed): string[] {
  const problems: string[] = [];
  for (const replicas of [observed.query, observed.posts, observed.comments]) {
    const [first, ...others] = Object.entries(replicas as Record<string, Record<string, unknown>>);
    if (!first) continue;
    for (const [view, byPost] of others) {
      const ids = new Set([...Object.keys(first[1]), ...Object.keys(byPost)]);
      const differ = [...ids].filter((id) => JSON.stringify(first[1][id]) !== JSON.stringify(byPost[id]));
      if (differ.length === 0) continue;
      problems.push(
        `${view} and ${first[0]} differ on ${differ.length} posts: ${differ.slice(0, 5).join(', ')}` +
          (differ.length > 5 ? ', ...' : ''),
      );
    }
  }
  return problems;
}
