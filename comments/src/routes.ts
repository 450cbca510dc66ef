import { HttpError, newCourseId, parseOr400, z, type ServiceContext } from '@blog/common';
import type { Express } from 'express';
import type { CommentsState } from './projection.js';

const createCommentBody = z.object({
  content: z.string({ error: 'Content is required' }).trim().min(1, 'Content is required').max(5000),
});

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
    await subscriber.publishAndApply({
      type: 'CommentCreated',
      data: { id, content, postId, status: 'pending' },
    });
    res.status(201).json(commentsOf(postId));
  });
}
