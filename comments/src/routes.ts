import {
  HttpError,
  newCourseId,
  parseOr400,
  refuseUnsafeCharacters,
  z,
  type PublicRoute,
  type ServiceContext,
} from '@blog/common';
import type { Express } from 'express';
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

/** What the browser calls here, as the Ingress's `/posts/?(.*)/comments` sends it. */
export const commentsPublicRoutes: PublicRoute[] = [
  { path: '/posts/:id/comments', methods: ['GET', 'POST'] },
];

export function commentsRoutes(app: Express, { subscriber }: ServiceContext<CommentsState>): void {
  const commentsOf = (postId: string) => subscriber.state.commentsByPostId.get(postId) ?? [];

  app.get('/posts/:id/comments', (req, res) => {
    res.json(commentsOf(req.params.id));
  });

  app.post('/posts/:id/comments', async (req, res) => {
    const postId = req.params.id;
    const { content } = parseOr400(createCommentBody, req.body);
    // The PostCreated may be a few milliseconds old: make sure we are caught up before saying 404.
    if (!subscriber.state.postIds.has(postId)) await subscriber.refresh();
    if (!subscriber.state.postIds.has(postId)) throw HttpError.notFound(`Post ${postId} not found`);
    const id = newCourseId((candidate) => subscriber.state.commentsById.has(candidate));
    const data = { id, content, postId, status: 'pending' } as const;
    // The post's comments as the new comment's own event left them (copies: a moderation applied before
    // this answer changes the objects in the state), so the new one is `pending`, as the course answers.
    const { view: commentsAsCreated } = await subscriber.publishAndApply(
      { type: 'CommentCreated', data },
      (state) => (state.commentsByPostId.get(postId) ?? []).map((comment) => ({ ...comment })),
    );
    // Stored, but not applied here when the bus went away between the publish and the read of the gap:
    // the answer still shows the new comment, as the course's 201 promises (its delivery follows).
    const answer = commentsAsCreated ?? [
      ...commentsOf(postId).filter((comment) => comment.id !== id),
      { id, content, status: 'pending' },
    ];
    res.status(201).json(answer);
  });
}
