import type { Projection } from '@blog/common';

export interface Post {
  id: string;
  title: string;
}

/** The course's shape, served as is by `GET /posts`: `{[id]: {id, title}}`. */
export type PostsState = Record<string, Post>;

export const postsProjection: Projection<PostsState> = {
  types: ['PostCreated'],
  // No prototype, so a post id such as "__proto__" or "constructor" is just a key.
  initial: () => Object.create(null) as PostsState,

  apply(posts, event) {
    if (event.type !== 'PostCreated') return;
    const { id, title } = event.data;
    if (posts[id]) return 'already-exists';
    posts[id] = { id, title };
  },
};
