import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  errorShapeProblem,
  fingerprint,
  keptPost,
  raw,
  SERVICES,
  settled,
  startBlog,
  urlOf,
  type RawAnswer,
  type Stack,
  type Target,
} from './support/bad-input.js';

/**
 * Text a person reads and keys a JavaScript object treats specially, over real HTTP to the whole blog:
 * titles and comments refuse control and bidi-override characters where they enter (the command routes
 * and the bus's publish) and nothing else refuses what is already in the log; every JSON body with a
 * `__proto__` or `constructor` key, at any depth, is refused on every service and the bus.
 */
let stack: Stack;
let postId: string;

beforeAll(async () => {
  stack = await startBlog();
  postId = await keptPost(stack);
});
afterAll(() => stack?.stop());

const json = { 'content-type': 'application/json' };
const post = (target: Target, path: string, body: string) => () =>
  raw(urlOf(stack, target), { method: 'POST', path, headers: json, body });
const errorsOf = (res: RawAnswer) =>
  (JSON.parse(res.body) as { errors: { message: string; field?: string }[] }).errors;

/** Sends, then checks: 400 with the error shape, the field named, and nothing changed anywhere. */
async function refused(send: () => Promise<RawAnswer>, field: string, message: RegExp) {
  await settled(stack);
  const before = fingerprint(stack);
  const res = await send();
  expect(res.status, res.body).toBe(400);
  expect(errorShapeProblem(res)).toBeUndefined();
  expect(errorsOf(res)).toContainEqual({ field, message: expect.stringMatching(message) });
  expect(fingerprint(stack)).toBe(before);
}

const UNSAFE: [string, string][] = [
  ['NUL', '\u0000'],
  ['BEL', '\u0007'],
  ['a newline', '\n'],
  ['a tab', '\t'],
  ['ESC', '\u001b'],
  ['DEL', '\u007f'],
  ['a C1 control (CSI)', '\u009b'],
  ['LRE', '\u202a'],
  ['RLO', '\u202e'],
  ['LRI', '\u2066'],
  ['PDI', '\u2069'],
];

const ORDINARY = [
  'orange',
  'Crème brûlée à l’œuf',
  '中文的评论',
  'ok 👍🏽 👨‍👩‍👧',
  'שלום, world',
  // The bidi marks (LRM, RLM, ALM) are part of ordinary right-to-left writing, and stay.
  'עברית\u200f 123 \u200eabc \u061c',
];

describe('titles and comments: control and bidi-override characters', () => {
  it.each(UNSAFE)('posts refuses a title with %s with 400 naming title', async (_name, character) => {
    await refused(
      post('posts', '/posts/create', JSON.stringify({ title: `Title ${character} here` })),
      'title',
      new RegExp(`U\\+${character.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`),
    );
  });

  it.each(UNSAFE)('comments refuses a comment with %s with 400 naming content', async (_name, character) => {
    await refused(
      post('comments', `/posts/${postId}/comments`, JSON.stringify({ content: `${character}at the start` })),
      'content',
      /control or bidirectional/,
    );
  });

  it('refuses them at the ends too, where the route trims blanks', async () => {
    await refused(post('posts', '/posts', JSON.stringify({ title: 'Trailing\n' })), 'title', /U\+000A/);
    await refused(
      post('comments', `/posts/${postId}/comments`, JSON.stringify({ content: '\u202eend' })),
      'content',
      /U\+202E/,
    );
  });

  it.each([
    ['PostCreated', 'data.title', { id: 'u1', title: 'evil\u202egnp.exe' }],
    ['CommentCreated', 'data.content', { id: 'u2', postId: 'p', content: 'ring\u0007', status: 'pending' }],
  ] as const)('the bus refuses a %s published with one, naming %s', async (type, field, data) => {
    await refused(post('bus', '/events', JSON.stringify({ type, data })), field, /control or bidirectional/);
    // In an array too: one such event refuses the whole publish.
    const ok = { type: 'PostCreated', data: { id: 'fine', title: 'fine' } };
    await refused(post('bus', '/events', JSON.stringify([ok, { type, data }])), `1.${field}`, /U\+/);
  });

  it.each(ORDINARY)('takes ordinary text: %s', async (text) => {
    const created = await post('posts', '/posts/create', JSON.stringify({ title: text }))();
    expect(created.status, created.body).toBe(201);
    expect(JSON.parse(created.body)).toMatchObject({ title: text });
    const commented = await post(
      'comments',
      `/posts/${postId}/comments`,
      JSON.stringify({ content: text }),
    )();
    expect(commented.status, commented.body).toBe(201);
    expect(JSON.parse(commented.body)).toContainEqual(expect.objectContaining({ content: text }));
  });

  it('still applies an event already in the log that holds them: delivery checks what it always did', async () => {
    // Stored before the check existed: written to the log as the bus stored it then.
    const [stored] = stack.bus.store.appendMany([
      { type: 'PostCreated', data: { id: 'older', title: 'Line one\nline two \u202e' } },
    ]);
    await settled(stack);
    const query = stack.services.query!.subscriber.state as { posts: Record<string, { title: string }> };
    expect(query.posts.older?.title).toBe('Line one\nline two \u202e');
    expect(stack.services.query!.subscriber.appliedSeq).toBeGreaterThanOrEqual(stored!.seq);
    expect(stack.bus.store.deadLetters()).toEqual([]);
    // A delivery by hand, as the bus sends it, is applied too.
    const delivered = await post(
      'query',
      '/events',
      JSON.stringify({ type: 'PostCreated', data: { id: 'byhand', title: 'tab\there' } }),
    )();
    expect(delivered.status, delivered.body).toBe(200);
  });
});

const event = (extra: string) => `{"type":"Custom","data":{"a":1},${extra}}`;

/** Where each target takes a JSON body: Express routes (posts, comments) and raw ones (every /events). */
const ROUTES: { target: Target; route: string; path: () => string; body: (extra: string) => string }[] = [
  {
    target: 'posts',
    route: 'POST /posts/create',
    path: () => '/posts/create',
    body: (extra) => `{"title":"t",${extra}}`,
  },
  { target: 'posts', route: 'POST /events', path: () => '/events', body: event },
  {
    target: 'comments',
    route: 'POST /posts/:id/comments',
    path: () => `/posts/${postId}/comments`,
    body: (extra) => `{"content":"c",${extra}}`,
  },
  { target: 'comments', route: 'POST /events', path: () => '/events', body: event },
  { target: 'query', route: 'POST /events', path: () => '/events', body: event },
  { target: 'moderation', route: 'POST /events', path: () => '/events', body: event },
  { target: 'bus', route: 'POST /events', path: () => '/events', body: event },
];

describe('JSON bodies with a __proto__ or constructor key', () => {
  it('covers every service', () => {
    expect(new Set(ROUTES.map(({ target }) => target))).toEqual(new Set(SERVICES));
  });

  it.each(ROUTES)(
    '$target $route refuses them at any depth with 400 naming the key',
    async ({ target, path, body }) => {
      const cases: [string, string, string][] = [
        ['"__proto__":{"polluted":true}', '__proto__', '__proto__'],
        ['"constructor":{"prototype":{"polluted":true}}', 'constructor', 'constructor'],
        ['"constructor":"plain"', 'constructor', 'constructor'],
        ['"extra":{"deeper":[1,{"__proto__":null}]}', 'extra.deeper.1.__proto__', '__proto__'],
        // The same key written with escapes is the same key to JSON.parse.
        ['"\\u005f_proto__":{}', '__proto__', '__proto__'],
        ['"extra":{"c\\u006fnstructor":1}', 'extra.constructor', 'constructor'],
      ];
      for (const [extra, field, key] of cases) {
        await refused(post(target, path(), body(extra)), field, new RegExp(`"${key}"`));
      }
      expect(Object.keys(Object.prototype)).toEqual([]);
    },
  );

  it('an event stored before the refusal, with such a key, still reaches every service (from the log)', async () => {
    // The bus took `constructor` keys until now (and dropped `__proto__`): written as it stored them.
    const dead = stack.bus.store.deadLetters().length;
    stack.bus.store.appendMany([
      { type: 'PostCreated', data: { id: 'olden', title: 'Older', constructor: 'kept' } },
    ]);
    // Its delivery is refused and dead-lettered; the next event's delivery fills the gap from the log.
    const next = await post(
      'bus',
      '/events',
      '{"type":"PostCreated","data":{"id":"newer","title":"Newer"}}',
    )();
    expect(next.status, next.body).toBe(200);
    await settled(stack);
    for (const name of ['posts', 'query'] as const) {
      const state = stack.services[name]!.subscriber.state as Record<string, unknown>;
      const posts = (name === 'posts' ? state : state.posts) as Record<string, { title: string }>;
      expect(posts.olden?.title, name).toBe('Older');
      expect(posts.newer?.title, name).toBe('Newer');
    }
    expect(stack.bus.store.deadLetters().length).toBeGreaterThan(dead);
  });

  it('takes the words as values, and keys that merely contain them', async () => {
    const created = await post(
      'posts',
      '/posts/create',
      '{"title":"__proto__ and constructor","note":{"constructors":1,"my__proto__":2}}',
    )();
    expect(created.status, created.body).toBe(201);
    const published = await post('bus', '/events', '{"type":"Custom","data":{"text":"constructor"}}')();
    expect(published.status, published.body).toBe(200);
  });
});
