/** The bench's views of query: `GET /posts` read as a browser revalidates, and the live stream. */
import http from 'node:http';
import { get } from './requests.js';
import { now } from './stats.js';

export interface QueryComment {
  id: string;
  content: string;
  status: string;
}
export type QueryPosts = Record<string, { id: string; title: string; comments: QueryComment[] }>;

/**
 * Reads query's `GET /posts` the way a browser revalidates: with the last ETag, so an unchanged view costs
 * a 304 and no parsing (a query without ETags is simply read in full each time).
 */
export class QueryView {
  posts: QueryPosts = {};
  private etag: string | undefined;
  polls = 0;

  constructor(private readonly url: string) {}

  /** One `GET /posts`; true if the view changed. */
  async poll(): Promise<boolean> {
    this.polls++;
    const reply = await get(`${this.url}/posts`, {
      headers: this.etag ? { 'if-none-match': this.etag } : {},
    });
    if (reply.status === 304) return false;
    if (reply.status !== 200) throw new Error(`GET ${this.url}/posts answered ${reply.status}`);
    this.posts = JSON.parse(reply.body) as QueryPosts;
    const etag = reply.headers.etag;
    this.etag = typeof etag === 'string' ? etag : undefined;
    return true;
  }
}

/**
 * Follows query's `GET /posts/live` (server-sent events, one message per event query applies) and notes
 * when each comment's CommentUpdated arrived: the moment query shows the final status to its clients.
 */
export class LiveView {
  private readonly finals = new Map<string, { status: string; at: number }>();
  private readonly waiters = new Map<string, () => void>();
  private closed = false;

  private constructor(private readonly req: http.ClientRequest) {}

  static connect(queryUrl: string): Promise<LiveView> {
    return new Promise((resolve, reject) => {
      const req = http.get(`${queryUrl}/posts/live`, { headers: { accept: 'text/event-stream' } }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          return reject(new Error(`GET ${queryUrl}/posts/live answered ${res.statusCode}`));
        }
        const view = new LiveView(req);
        let buffered = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffered += chunk;
          let end: number;
          while ((end = buffered.indexOf('\n\n')) >= 0) {
            view.onMessage(buffered.slice(0, end));
            buffered = buffered.slice(end + 2);
          }
        });
        resolve(view);
      });
      req.on('error', (err) => reject(err));
    });
  }

  private onMessage(message: string): void {
    const at = now();
    if (/^event: /m.test(message)) return; // the snapshot sent on connect; events come as plain messages
    const data = message
      .split('\n')
      .filter((line) => line.startsWith('data: '))
      .map((line) => line.slice(6))
      .join('\n');
    if (!data) return; // a heartbeat comment
    const event = JSON.parse(data) as { type: string; data: { id?: string; status?: string } };
    if (event.type !== 'CommentUpdated' || !event.data.id || !event.data.status) return;
    if (event.data.status === 'pending') return;
    this.finals.set(event.data.id, { status: event.data.status, at });
    this.waiters.get(event.data.id)?.();
  }

  /** The comment's final status and when query pushed it; throws after `timeoutMs`. */
  async finalStatus(commentId: string, timeoutMs: number): Promise<{ status: string; at: number }> {
    const known = this.finals.get(commentId);
    if (known) return known;
    if (this.closed) throw new Error('the live stream of query is closed');
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(commentId);
        reject(new Error(`comment ${commentId} was not pushed final by query after ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(commentId, () => {
        clearTimeout(timer);
        this.waiters.delete(commentId);
        resolve();
      });
    });
    return this.finals.get(commentId)!;
  }

  close(): void {
    this.closed = true;
    this.req.destroy();
  }
}
