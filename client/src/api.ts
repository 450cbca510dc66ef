/**
 * The three calls of the course's client, with fetch (no axios: a smaller bundle). Every URL is relative,
 * so the same build works at posts.com (the Ingress) and at http://localhost:3000 (the local router).
 * A failure becomes an ApiError whose message can be shown as it is.
 */
import type { Comment, Posts } from './posts';

export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The services answer errors as `{"errors": [{"message", "field"?}]}`; show their messages. */
async function messageOf(response: Response): Promise<string> {
  const fallback = `The server answered ${response.status} ${response.statusText}`.trim();
  try {
    const body = (await response.json()) as { errors?: Array<{ message?: unknown }> };
    const messages = (body.errors ?? []).map((error) => error.message).filter((m) => typeof m === 'string');
    return messages.length > 0 ? messages.join('; ') : fallback;
  } catch {
    return fallback;
  }
}

async function call<T>(path: string, init?: { method: 'POST'; body: unknown }): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method: init?.method ?? 'GET',
      headers: init ? { 'Content-Type': 'application/json', Accept: 'application/json' } : undefined,
      body: init ? JSON.stringify(init.body) : undefined,
    });
  } catch {
    // fetch rejects only when no answer came at all: the server is down or the network is.
    throw new ApiError('Could not reach the blog service. Is it running? Try again in a moment.');
  }
  if (!response.ok) throw new ApiError(await messageOf(response), response.status);
  return (await response.json()) as T;
}

export const fetchPosts = () => call<Posts>('/posts');

export const createPost = (title: string) =>
  call<{ id: string; title: string }>('/posts/create', { method: 'POST', body: { title } });

export const createComment = (postId: string, content: string) =>
  call<Comment[]>(`/posts/${encodeURIComponent(postId)}/comments`, { method: 'POST', body: { content } });
