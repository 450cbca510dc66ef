import { bearerHeader, type StoredEvent } from '@blog/common';

export interface QueryPost {
  id: string;
  title: string;
  comments: { id: string; content: string; status: string }[];
}

/**
 * The course's calls, as the React client and the lectures' Postman requests make them; the reads of the
 * bus carry `token` (EVENT_BUS_TOKEN), when given.
 */
export function blogClient(
  urls: { posts: string; comments: string; query: string; 'event-bus': string },
  { token }: { token?: string } = {},
) {
  const send = async (url: string, body?: unknown, auth: Record<string, string> = {}) => {
    const res = await fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? auth : { ...auth, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(15_000),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, headers: res.headers };
  };
  return {
    createPost: (title: string) => send(`${urls.posts}/posts/create`, { title }),
    createComment: (postId: string, content: string) =>
      send(`${urls.comments}/posts/${postId}/comments`, { content }),
    comments: async (postId: string) => (await send(`${urls.comments}/posts/${postId}/comments`)).body,
    postsOfPosts: async () =>
      (await send(`${urls.posts}/posts`)).body as Record<string, { id: string; title: string }>,
    query: async () => (await send(`${urls.query}/posts`)).body as Record<string, QueryPost>,
    events: async () =>
      (await send(`${urls['event-bus']}/events`, undefined, bearerHeader(token))).body as StoredEvent[],
    subscribers: async () =>
      (await send(`${urls['event-bus']}/subscribers`, undefined, bearerHeader(token))).body,
  };
}
