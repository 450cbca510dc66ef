/** The bench's requests, through the services' own HttpClient: one keep-alive pool for every phase. */
import { HttpClient, type HttpAnswer } from '@blog/common';
import type { Urls } from './options.js';

/** Past this, a request has failed (each phase is bounded in time). */
export const REQUEST_TIMEOUT_MS = 15_000;

// Wider than a service's pool: the throughput writers and the rate phase's set-up keep many requests open.
const client = new HttpClient({ maxSockets: 256 });

export function get(
  url: string,
  {
    headers = {},
    timeoutMs = REQUEST_TIMEOUT_MS,
  }: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  return client.request(url, { method: 'GET', headers, timeoutMs });
}

export function post(url: string, json: unknown): Promise<HttpAnswer> {
  return client.request(url, { method: 'POST', body: JSON.stringify(json), timeoutMs: REQUEST_TIMEOUT_MS });
}

export async function postJson<T>(url: string, json: unknown, expected = 201): Promise<T> {
  const reply = await post(url, json);
  if (reply.status !== expected) {
    throw new Error(`POST ${url} answered ${reply.status}: ${reply.body.slice(0, 300)}`);
  }
  return JSON.parse(reply.body) as T;
}

export async function createPost(urls: Pick<Urls, 'posts'>, title: string): Promise<string> {
  const created = await postJson<{ id: string }>(`${urls.posts}/posts/create`, { title });
  return created.id;
}

/** Ends the pool's keep-alive connections, so the process can exit. */
export const closeRequests = () => client.close();
