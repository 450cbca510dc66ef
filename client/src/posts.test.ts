import { describe, expect, it } from 'vitest';
import { applyEvent, type LiveEvent, type Posts } from './posts';

const at = '2026-11-26T10:00:00.000Z';
const event = (type: string, data: Record<string, unknown>, seq?: number): LiveEvent => ({
  type,
  seq,
  time: at,
  data,
});

describe('applyEvent (the query projection, in the browser)', () => {
  it('adds posts and comments, and updates a comment’s status and content', () => {
    let posts: Posts = {};
    posts = applyEvent(posts, event('PostCreated', { id: 'p1', title: 'One' }, 1));
    posts = applyEvent(
      posts,
      event('CommentCreated', { id: 'c1', postId: 'p1', content: 'hi', status: 'pending' }, 2),
    );
    expect(posts.p1!.comments).toEqual([{ id: 'c1', content: 'hi', status: 'pending' }]);
    posts = applyEvent(
      posts,
      event('CommentModerated', { id: 'c1', postId: 'p1', content: 'hi', status: 'approved' }, 3),
    );
    expect(posts.p1!.comments[0]!.status).toBe('pending');
    posts = applyEvent(
      posts,
      event('CommentUpdated', { id: 'c1', postId: 'p1', content: 'hi!', status: 'approved' }, 4),
    );
    expect(posts).toEqual({
      p1: { id: 'p1', title: 'One', comments: [{ id: 'c1', content: 'hi!', status: 'approved' }] },
    });
  });

  it('returns the same object for an event applied twice, unknown, or about something unknown', () => {
    const posts = applyEvent({}, event('PostCreated', { id: 'p1', title: 'One' }));
    expect(applyEvent(posts, event('PostCreated', { id: 'p1', title: 'Again' }))).toBe(posts);
    expect(applyEvent(posts, event('PostLiked', { id: 'p1' }))).toBe(posts);
    expect(applyEvent(posts, event('CommentCreated', { id: 'c', postId: 'nope', content: 'x' }))).toBe(posts);
    expect(applyEvent(posts, event('CommentUpdated', { id: 'c', postId: 'p1', status: 'weird' }))).toBe(
      posts,
    );
    expect(applyEvent(posts, event('PostCreated', { id: '__proto__', title: 'x' }))['__proto__']).toEqual({
      id: '__proto__',
      title: 'x',
      comments: [],
    });
  });
});
