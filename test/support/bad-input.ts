import { isUtf8 } from 'node:buffer';
import fc from 'fast-check';
import {
  forbiddenKeyPath,
  incomingEventSchema,
  outgoingEventSchema,
  publishDataSchemas,
  unsafeCharacter,
  validateEvent,
} from '@blog/common';
import { commentsProjection } from '../../comments/src/projection.js';
import { commentsPublicRoutes, commentsRawRoutes, commentsRoutes } from '../../comments/src/routes.js';
import { moderationProjection } from '../../moderation/src/projection.js';
import { postsProjection } from '../../posts/src/projection.js';
import { postsPublicRoutes, postsRoutes } from '../../posts/src/routes.js';
import { queryProjection } from '../../query/src/projection.js';
import { queryPublicRoutes, queryRawRoutes } from '../../query/src/routes.js';
import { raw, type RawAnswer } from './raw-http.js';
import { startStack } from './stack.js';

/**
 * What the bad-input tests share: the whole blog in this process (a real bus on SQLite, the four services,
 * real HTTP), a raw HTTP client that sends any bytes, paths and headers (raw-http.ts), and a fingerprint of
 * all state, so a test can tell that bad input changed nothing.
 */

export const definitions = [
  { name: 'posts', projection: postsProjection, routes: postsRoutes, publicRoutes: postsPublicRoutes },
  {
    name: 'comments',
    projection: commentsProjection,
    routes: commentsRoutes,
    rawRoutes: commentsRawRoutes,
    publicRoutes: commentsPublicRoutes,
  },
  { name: 'query', projection: queryProjection, rawRoutes: queryRawRoutes, publicRoutes: queryPublicRoutes },
  { name: 'moderation', projection: moderationProjection },
] as const;

export type Stack = Awaited<ReturnType<typeof startStack>>;
export const SERVICES = ['posts', 'comments', 'query', 'moderation', 'bus'] as const;
export type Target = (typeof SERVICES)[number];

export const urlOf = (stack: Stack, target: Target) =>
  target === 'bus' ? stack.busUrl : stack.urls[target]!;

export { raw, type RawAnswer } from './raw-http.js';

/** The error shape every 4xx/5xx must have: JSON `{errors: [{message}, ...]}`, nothing else. */
export function errorShapeProblem(answer: RawAnswer): string | undefined {
  if (!String(answer.headers['content-type']).startsWith('application/json')) {
    return `content-type ${answer.headers['content-type']}`;
  }
  let body: unknown;
  try {
    body = JSON.parse(answer.body);
  } catch {
    return `not JSON: ${answer.body.slice(0, 100)}`;
  }
  const errors = (body as { errors?: unknown }).errors;
  if (!Array.isArray(errors) || errors.length === 0) return `no errors array: ${answer.body.slice(0, 100)}`;
  if (!errors.every((e) => typeof (e as { message?: unknown }).message === 'string')) {
    return `an error without a message: ${answer.body.slice(0, 100)}`;
  }
  if (/\bat .+:\d+:\d+|node_modules|\/work\/|Error:/.test(answer.body))
    return `internals leaked: ${answer.body}`;
  return undefined;
}

/** Everything bad input must not change: the log head and every service's state. */
export function fingerprint(stack: Stack): string {
  const s = stack.services as Record<string, { subscriber: { appliedSeq: number; state: unknown } }>;
  const comments = s.comments!.subscriber.state as {
    commentsById: Map<string, unknown>;
    postIds: Set<string>;
  };
  const query = s.query!.subscriber.state as { version: number };
  return JSON.stringify({
    head: stack.bus.store.headSeq(),
    applied: Object.fromEntries(Object.entries(s).map(([name, svc]) => [name, svc.subscriber.appliedSeq])),
    posts: s.posts!.subscriber.state,
    comments: [[...comments.postIds], [...comments.commentsById.entries()]],
    query: query.version,
    deadLetters: stack.bus.store.deadLetters().length,
    // Bad keys must not reach a prototype: Object.prototype stays without own enumerable keys.
    prototype: Object.keys(Object.prototype),
  });
}

export function startBlog() {
  return startStack([...definitions]);
}

/** Something for bad input to leave alone: a post, and a comment on it if `comment` is given; its id. */
export async function keptPost(stack: Stack, comment?: string): Promise<string> {
  const json = { 'content-type': 'application/json' };
  const post = await raw(stack.urls.posts!, {
    method: 'POST',
    path: '/posts/create',
    headers: json,
    body: '{"title":"kept"}',
  });
  const postId = (JSON.parse(post.body) as { id: string }).id;
  if (comment !== undefined) {
    await raw(stack.urls.comments!, {
      method: 'POST',
      path: `/posts/${postId}/comments`,
      headers: json,
      body: JSON.stringify({ content: comment }),
    });
  }
  return postId;
}

/** Until every service has applied the whole log (so a fingerprint is not taken mid-delivery). */
export async function settled(stack: Stack, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const services = Object.values(stack.services) as { subscriber: { appliedSeq: number } }[];
  while (!services.every((service) => service.subscriber.appliedSeq === stack.bus.store.headSeq())) {
    if (Date.now() > deadline) throw new Error('the services did not catch up with the log in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/**
 * The write routes, and when a body there is correct (the only case allowed to change state). `field`: the
 * text the route takes from a person, if any.
 */
export const writeRoutes: {
  target: Target;
  path: (postId: string) => string;
  field?: 'title' | 'content';
  valid: (body: unknown) => boolean;
}[] = [
  { target: 'posts', path: () => '/posts/create', field: 'title', valid: (b) => hasText(b, 'title', 1000) },
  { target: 'posts', path: () => '/posts', field: 'title', valid: (b) => hasText(b, 'title', 1000) },
  {
    target: 'comments',
    path: (postId) => `/posts/${postId}/comments`,
    field: 'content',
    valid: (b) => hasText(b, 'content', 5000),
  },
  ...(['posts', 'comments', 'query', 'moderation'] as const).map((target) => ({
    target,
    path: () => '/events',
    valid: (b: unknown) => eventsValid(b, incomingEventSchema),
  })),
  {
    target: 'bus',
    path: () => '/events',
    valid: (b) => eventsValid(b, outgoingEventSchema, publishDataSchemas),
  },
];

function hasText(body: unknown, key: string, max: number): boolean {
  const value = (body as Record<string, unknown> | null)?.[key];
  return (
    typeof value === 'string' &&
    unsafeCharacter(value) === undefined &&
    value.trim().length > 0 &&
    value.trim().length <= max
  );
}

function eventsValid(
  body: unknown,
  schema: typeof incomingEventSchema | typeof outgoingEventSchema,
  dataSchemas?: typeof publishDataSchemas,
): boolean {
  if (typeof body !== 'object' || body === null) return false;
  const items = Array.isArray(body) ? body : [body];
  return (
    items.length > 0 &&
    items.length <= 1000 &&
    items.every((item) => validateEvent(schema, item, '', dataSchemas).event !== undefined)
  );
}

/**
 * How a server reads a body: only JSON content types, UTF-8 only, within 100 kB, no `__proto__` or
 * `constructor` key; else no body at all (undefined), which no route takes.
 */
export function parsedBody(bytes: Buffer, type: string | undefined): unknown {
  if (!type || !/^application\/json(; charset=utf-8)?$/.test(type)) return undefined;
  if (bytes.length > 100 * 1024 || !isUtf8(bytes) || forbiddenKeyPath(bytes)) return undefined;
  try {
    return JSON.parse(bytes.toString());
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------- generators

/** Control characters (C0, DEL, C1) and the bidi embeddings, overrides and isolates. */
export const unsafeChar = fc
  .oneof(
    fc.integer({ min: 0x00, max: 0x1f }),
    fc.integer({ min: 0x7f, max: 0x9f }),
    fc.integer({ min: 0x202a, max: 0x202e }),
    fc.integer({ min: 0x2066, max: 0x2069 }),
  )
  .map((code) => String.fromCodePoint(code));

/** Text a person may write (any grapheme that is not unsafe: accents, CJK, emoji, the bidi marks). */
export const ordinaryText = fc
  .string({ maxLength: 30, unit: 'grapheme' })
  .map((text) => [...text].filter((char) => !unsafeCharacter(char)).join(''));

/** Ordinary text with unsafe characters anywhere in it: at the start, the end, the middle. */
export const unsafeText = fc
  .tuple(ordinaryText, fc.array(unsafeChar, { minLength: 1, maxLength: 3 }), ordinaryText)
  .map(([before, chars, after]) => `${before}${chars.join('')}${after}`);

/** `__proto__` or `constructor` as JSON text, written plainly or with `\u` escapes (the same key to JSON.parse). */
export const forbiddenKeyText = fc.oneof(
  fc.constantFrom('"__proto__"', '"constructor"'),
  fc.constantFrom('"\\u005f_proto__"', '"__pr\\u006fto__"', '"c\\u006Fnstructor"', '"constructo\\u0072"'),
);
export const keyOf = (text: string) => JSON.parse(text) as string;
