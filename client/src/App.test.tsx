// @vitest-environment happy-dom
import { act, cleanup, render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import App from './App';
import { CommentList } from './components/CommentList';

/** What the app asked of the API, and what the test answers. */
let calls: Array<{ method: string; url: string; body?: unknown }>;
let answer: (method: string, url: string, body?: unknown) => Response | Promise<Response>;
const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

/** An EventSource the test drives: `emit('snapshot', …)`, `emit('message', …)`. */
class FakeEventSource {
  static CLOSED = 2;
  static last: FakeEventSource | undefined;
  readyState = 1;
  onmessage: ((message: MessageEvent<string>) => void) | null = null;
  onerror: (() => void) | null = null;
  private readonly listeners = new Map<string, (message: MessageEvent<string>) => void>();
  constructor(readonly url: string) {
    FakeEventSource.last = this;
  }
  addEventListener(type: string, listener: (message: MessageEvent<string>) => void) {
    this.listeners.set(type, listener);
  }
  close() {
    this.readyState = 2;
  }
  emit(type: string, data: unknown) {
    const message = new MessageEvent('message', { data: JSON.stringify(data) });
    act(() => (type === 'message' ? this.onmessage?.(message) : this.listeners.get(type)?.(message)));
  }
}

beforeEach(() => {
  calls = [];
  answer = () => json(200, {});
  vi.stubGlobal('fetch', async (url: string, init?: RequestInit) => {
    const method = init?.method ?? 'GET';
    const body = init?.body ? JSON.parse(String(init.body)) : undefined;
    calls.push({ method, url, body });
    return answer(method, url, body);
  });
  vi.stubGlobal('EventSource', FakeEventSource);
});
afterEach(() => {
  cleanup();
  vi.unstubAllGlobals();
  FakeEventSource.last = undefined;
});

describe('CommentList', () => {
  it('shows the course’s text for each status', () => {
    render(
      <CommentList
        comments={[
          { id: 'a', content: 'Nice', status: 'approved' },
          { id: 'b', content: 'Hmm', status: 'pending' },
          { id: 'c', content: 'orange', status: 'rejected' },
        ]}
      />,
    );
    expect(screen.getAllByRole('listitem').map((item) => item.textContent)).toEqual([
      'Nice',
      'This comment is awaiting moderation',
      'This comment has been rejected',
    ]);
  });
});

describe('App', () => {
  it('is the course’s page: headings, a labelled Title field, Submit, and the posts in Bootstrap cards', async () => {
    answer = () => json(200, { p1: { id: 'p1', title: '<img src=x onerror=alert(1)>', comments: [] } });
    const { container } = render(<App />);
    expect(screen.getAllByRole('heading', { level: 1 }).map((h) => h.textContent)).toEqual([
      'Create Post',
      'Posts',
    ]);
    expect(container.firstElementChild!.className).toBe('container');
    expect(screen.getByLabelText('Title').className).toBe('form-control');
    const card = await screen.findByTestId('post-card');
    expect(card.className).toBe('card');
    expect(screen.getByTestId('post-list').className).toBe(
      'd-flex flex-row flex-wrap justify-content-between',
    );
    // A title is text, never markup.
    expect(within(card).getByRole('heading', { level: 3 }).textContent).toBe('<img src=x onerror=alert(1)>');
    expect(card.querySelector('img')).toBeNull();
    expect(within(card).getByLabelText('New Comment').className).toBe('form-control');
    expect(calls[0]).toEqual({ method: 'GET', url: '/posts', body: undefined });
    expect(FakeEventSource.last!.url).toBe('/posts/live');
  });

  it('creates a post with POST /posts/create and clears the field', async () => {
    const user = userEvent.setup();
    render(<App />);
    answer = (method) => (method === 'POST' ? json(201, { id: 'p1', title: 'Hello' }) : json(200, {}));
    await user.type(screen.getByLabelText('Title'), 'Hello');
    await user.click(screen.getByRole('button', { name: 'Submit' }));
    expect(calls).toContainEqual({ method: 'POST', url: '/posts/create', body: { title: 'Hello' } });
    expect((screen.getByLabelText('Title') as HTMLInputElement).value).toBe('');
    expect(screen.queryByRole('alert')).toBeNull();
  });

  it('shows the API’s message for a refused post, and says so when the service cannot be reached', async () => {
    const user = userEvent.setup();
    render(<App />);
    answer = (method) =>
      method === 'POST'
        ? json(400, { errors: [{ message: 'title must not be empty', field: 'title' }] })
        : json(200, {});
    await user.click(screen.getByRole('button', { name: 'Submit' }));
    expect((await screen.findByRole('alert')).textContent).toBe('title must not be empty');
    expect(screen.getByLabelText('Title').getAttribute('aria-invalid')).toBe('true');

    answer = () => Promise.reject(new TypeError('Failed to fetch'));
    await user.type(screen.getByLabelText('Title'), 'x{Enter}');
    expect((await screen.findByRole('alert')).textContent).toMatch(/Could not reach the blog service/);
    expect((screen.getByLabelText('Title') as HTMLInputElement).value).toBe('x');
  });

  it('says why the posts could not be loaded', async () => {
    answer = () =>
      json(502, { errors: [{ message: 'the query service (query-srv:4002) is not reachable' }] });
    render(<App />);
    expect((await screen.findByRole('alert')).textContent).toBe(
      'Could not load the posts: the query service (query-srv:4002) is not reachable',
    );
  });

  it('follows the live stream: a snapshot, then each event, shown in the posts and the event-flow panel', async () => {
    render(<App />);
    const live = FakeEventSource.last!;
    const time = '2026-11-26T10:00:00.000Z';
    live.emit('snapshot', { seq: 1, posts: { p1: { id: 'p1', title: 'First', comments: [] } }, recent: [] });
    expect(screen.getByRole('heading', { level: 3 }).textContent).toBe('First');
    live.emit('message', {
      type: 'CommentCreated',
      seq: 2,
      id: 'e2',
      time,
      data: { id: 'c1', postId: 'p1', content: 'Nice', status: 'pending' },
    });
    expect(screen.getByRole('listitem').textContent).toBe('This comment is awaiting moderation');
    live.emit('message', {
      type: 'CommentModerated',
      seq: 3,
      id: 'e3',
      time,
      data: { id: 'c1', postId: 'p1', content: 'Nice', status: 'approved' },
    });
    live.emit('message', {
      type: 'CommentUpdated',
      seq: 4,
      id: 'e4',
      time,
      data: { id: 'c1', postId: 'p1', content: 'Nice', status: 'approved' },
    });
    expect(screen.getByRole('listitem').textContent).toBe('Nice');
    live.emit('message', {
      type: 'PostCreated',
      seq: 5,
      id: 'e5',
      time,
      data: { id: 'p2', title: 'From elsewhere' },
    });
    expect(screen.getAllByTestId('post-card')).toHaveLength(2);

    const rows = within(screen.getByTestId('event-flow')).getAllByRole('row').slice(1);
    expect(rows.map((row) => row.getAttribute('data-type'))).toEqual([
      'PostCreated',
      'CommentUpdated',
      'CommentModerated',
      'CommentCreated',
    ]);
    expect(rows[0]!.textContent).toContain('{"id":"p2","title":"From elsewhere"}');
    expect(screen.getByTestId('event-flow').textContent).toContain('live');
  });
});
