import { useCallback, useEffect, useRef, useState } from 'react';
import { fetchPosts } from './api';
import { applyEvent, type LiveEvent, type Posts } from './posts';

/** How many events the event-flow panel keeps. */
export const EVENTS_SHOWN = 20;
/** After the browser gives up on the stream for good (a non-200 answer), open a new one this much later. */
const REOPEN_AFTER_MS = 5000;

export type LiveStatus = 'connecting' | 'live' | 'offline';

interface Snapshot {
  seq: number;
  posts: Posts;
  recent: LiveEvent[];
}

/**
 * The posts, kept current: `GET /posts` once (as the course's client does), then the query service's
 * stream `GET /posts/live`, whose first message is a snapshot and every later one an applied event. The
 * snapshot comes on the same ordered stream as the events, so no event can fall between the two; it also
 * wins over the `GET /posts` answer, which may be older. Without the stream (a course-original query
 * service), `refresh()` re-reads `GET /posts` after each change made here.
 */
export function useLivePosts() {
  const [posts, setPosts] = useState<Posts>({});
  const [events, setEvents] = useState<LiveEvent[]>([]);
  const [loadError, setLoadError] = useState<string>();
  const [status, setStatus] = useState<LiveStatus>('connecting');
  const hasSnapshot = useRef(false);

  const load = useCallback(async () => {
    try {
      const fresh = await fetchPosts();
      if (!hasSnapshot.current) setPosts(fresh);
      setLoadError(undefined);
    } catch (err) {
      setLoadError((err as Error).message);
    }
  }, []);

  useEffect(() => {
    void load();
    if (typeof EventSource === 'undefined') {
      setStatus('offline');
      return;
    }
    let source: EventSource | undefined;
    let reopenTimer: ReturnType<typeof setTimeout> | undefined;
    let closed = false;
    const open = () => {
      source = new EventSource('/posts/live');
      source.addEventListener('snapshot', (message) => {
        const snapshot = JSON.parse((message as MessageEvent<string>).data) as Snapshot;
        hasSnapshot.current = true;
        setPosts(snapshot.posts);
        setEvents(snapshot.recent.slice(-EVENTS_SHOWN).reverse());
        setLoadError(undefined);
        setStatus('live');
      });
      source.onmessage = (message: MessageEvent<string>) => {
        const event = JSON.parse(message.data) as LiveEvent;
        setPosts((current) => applyEvent(current, event));
        setEvents((current) => [event, ...current].slice(0, EVENTS_SHOWN));
      };
      source.onerror = () => {
        // The browser reconnects by itself (and gets a new snapshot) unless the answer was not a stream.
        hasSnapshot.current = false;
        setStatus('offline');
        if (source?.readyState === EventSource.CLOSED && !closed) {
          reopenTimer = setTimeout(open, REOPEN_AFTER_MS);
        }
      };
    };
    open();
    return () => {
      closed = true;
      clearTimeout(reopenTimer);
      source?.close();
    };
  }, [load]);

  /** After a change made here: the stream brings it when live; else read the posts again. */
  const refresh = useCallback(async () => {
    if (!hasSnapshot.current) await load();
  }, [load]);

  return { posts, events, status, loadError, refresh };
}
