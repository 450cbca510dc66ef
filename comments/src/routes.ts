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
    await subscriber.publishAndApply({ type: 'CommentCreated', data });
    // Stored, but not yet applied here when the bus went away between the publish and the read of the
    // gap: the answer still shows the new comment, as the course's 201 promises (its delivery follows).
    const comments = commentsOf(postId);
    const answer = comments.some((c) => c.id === id)
      ? comments
      : [...comments, { id, content, status: 'pending' }];
    res.status(201).json(answer);
  });
}
