import {
  newCourseId,
  parseOr400,
  refuseUnsafeCharacters,
  z,
  type PublicRoute,
  type ServiceContext,
} from '@blog/common';
import type { Express, RequestHandler } from 'express';

import type { PostsState } from './projection.js';

// Checked before the trim, so a title that ends in a newline is refused rather than quietly cut.
const createPostBody = z.object({
  title: z
    .string({ error: 'Title is required' })
    .superRefine(refuseUnsafeCharacters('The title'))
    .trim()
    .min(1, 'Title is required')
    .max(1000),
});

/** What the browser calls here: the Ingress's `/posts/create`, and the earlier lectures' `/posts`. */
export const postsPublicRoutes: PublicRoute[] = [
  { path: '/posts/create', methods: ['POST'] },
  { path: '/posts', methods: ['GET', 'POST'] },
];

export function postsRoutes(app: Express, { subscriber }: ServiceContext<PostsState>): void {
  app.get('/posts', (_req, res) => {
    res.json(subscriber.state);
  });

  const createPost: RequestHandler = async (req, res) => {
    const { title } = parseOr400(createPostBody, req.body);
    const id = newCourseId((candidate) => candidate in subscriber.state);
    await subscriber.publishAndApply({ type: 'PostCreated', data: { id, title } });
    res.status(201).json({ id, title });
  };
  // `POST /posts/create` since the Kubernetes lectures (ingress-nginx routes by path, not by method);
  // `POST /posts` is the route of the earlier lectures, kept so a learner can follow them too.
  app.post('/posts/create', createPost);
  app.post('/posts', createPost);
}
