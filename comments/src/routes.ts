import {
  HttpError,
  newCourseId,
  parseOr400,
  refuseUnsafeCharacters,
  unsafeCharacter,
  z,
  type PublicRoute,
  type RawKit,
  type RawRoutes,
  type ServiceContext,
} from '@blog/common';
import type { Express } from 'express';
import { CommentListJson, listJson } from './comment-list-json.js';
import type { CommentsState } from './projection.js';

// Checked before the trim, so a comment that ends in a newline is refused rather than quietly cut.
const createCommentBody = z.object({
  content: z
    .string({ error: 'Content is required' })
    .superRefine(refuseUnsafeCharacters('The comment'))
    .trim()
    .min(1, 'Content is required')
    .max(5000),
});

/**
 * The body of a new comment, as `createCommentBody` takes it: a plainly valid body is checked here, without
 * zod, which parses any other to name what is wrong (the 400).
 */
function commentBody(body: unknown): { content: string } {
  const content = (body as { content?: unknown } | null)?.content;
  if (typeof body === 'object' && body !== null && !Array.isArray(body) && typeof content === 'string') {
    const trimmed = content.trim();
    if (trimmed.length >= 1 && trimmed.length <= 5000 && unsafeCharacter(content) === undefined) {
      return { content: trimmed };
    }
  }
  return parseOr400(createCommentBody, body);
}

/** What the browser calls here, as the Ingress's `/posts/?(.*)/comments` sends it. */
export const commentsPublicRoutes: PublicRoute[] = [
  { path: '/posts/:id/comments', methods: ['GET', 'POST'] },
];

/** `GET /posts/:id/comments`, and `POST` for a server without `commentsRawRoutes` (the same answers). */
export function commentsRoutes(app: Express, { subscriber }: ServiceContext<CommentsState>): void {
  app.get('/posts/:id/comments', (req, res) => {
    res.json(subscriber.state.commentsByPostId.get(req.params.id) ?? []);
  });
  const createComment = commentCreation(subscriber);
  app.post('/posts/:id/comments', async (req, res) => {
    const { status, json } = await createComment(req.body, req.params.id);
    res.status(status).type('application/json').send(json);
  });
}

/**
 * `POST /posts/:id/comments`, the busiest public route, answered ahead of Express (see `rawRoutes` in
 * common/src/http.ts): the same 201 with the post's comments, 400 and 404 as JSON.
 */
export function commentsRawRoutes(
  { subscriber }: ServiceContext<CommentsState>,
  headers: Record<string, string>,
  kit: RawKit,
): RawRoutes {
  const createComment = commentCreation(subscriber);
  return {
    'POST /posts/:id/comments': kit.json(
      '/posts/:id/comments',
      (body, _req, params) => createComment(body, params.id!),
      undefined,
      headers,
    ),
  };
}

/** Creates a comment: its 201 (the post's comments as JSON text), or throws the 400, 404 or 503. */
function commentCreation(subscriber: ServiceContext<CommentsState>['subscriber']) {
  // A 201 lists every comment of its post: each post's list is kept as JSON between its 201s.
  const listsJson = new Map<string, CommentListJson>();
  const postListJson = (state: CommentsState, postId: string) => {
    let list = listsJson.get(postId);
    if (!list) listsJson.set(postId, (list = new CommentListJson()));
    return list.of(state.commentsByPostId.get(postId) ?? [], state.finalStatusChanges);
  };
  return async (body: unknown, postId: string): Promise<{ status: number; json: string }> => {
    const { content } = commentBody(body);
    // The PostCreated may be a few milliseconds old: make sure we are caught up before saying 404.
    if (!subscriber.state.postIds.has(postId)) await subscriber.refresh();
    if (!subscriber.state.postIds.has(postId)) throw HttpError.notFound(`Post ${postId} not found`);
    const id = newCourseId((candidate) => subscriber.state.commentsById.has(candidate));
    const data = { id, content, postId, status: 'pending' } as const;
    // The post's comments as the new comment's own event left them (taken then: a moderation applied
    // before this answer changes the objects in the state), so the new one is `pending`, as the course answers.
    const { view: commentsAsCreated } = await subscriber.publishAndApply(
      { type: 'CommentCreated', data },
      (state) => postListJson(state, postId),
    );
    // Stored, but not applied here when the bus went away between the publish and the read of the gap:
    // the answer still shows the new comment, as the course's 201 promises (its delivery follows).
    const json =
      commentsAsCreated ??
      listJson([
        ...(subscriber.state.commentsByPostId.get(postId) ?? []).filter((comment) => comment.id !== id),
        { id, content, status: 'pending' },
      ]);
    return { status: 201, json };
  };
}
