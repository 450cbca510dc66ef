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
} from './support/bad-input.js';

/**
 * The nastiest inputs the generated tests (bad-input.property.test.ts) tried, kept as plain cases: each one
 * a 4xx JSON `{errors: [{message}]}` and no change anywhere. The first three were bugs: a 500 on deep JSON,
 * invalid UTF-8 stored as U+FFFD, and Node's bare 400 with no body for a request its parser refuses.
 */
let stack: Stack;
let postId: string;

beforeAll(async () => {
  stack = await startBlog();
  postId = await keptPost(stack);
});
afterAll(() => stack?.stop());

const json = { 'content-type': 'application/json' };
const deep = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;

/** Sends, then checks: the status, the error shape, a message matching, and nothing changed. */
async function refused(send: () => Promise<RawAnswer>, status: number, message?: RegExp) {
  await settled(stack);
  const before = fingerprint(stack);
  const res = await send();
  expect(res.status, res.body).toBe(status);
  expect(errorShapeProblem(res)).toBeUndefined();
  if (message)
    expect((JSON.parse(res.body) as { errors: { message: string }[] }).errors[0]!.message).toMatch(message);
  expect(fingerprint(stack)).toBe(before);
  return res;
}

describe('bad input, the nastiest cases', () => {
  it('the bus refuses an event nested 20,000 deep with 400 (was a 500: JSON.stringify overflowed the stack)', async () => {
    const body = `{"type":"Deep","data":{"a":${deep(20_000)}}}`;
    await refused(
      () => raw(stack.busUrl, { method: 'POST', path: '/events', headers: json, body }),
      400,
      /too deep/,
    );
  });

  it.each(['posts', 'comments', 'query', 'moderation'] as const)(
    '%s refuses a delivery nested past 100 levels with 400',
    async (target) => {
      const body = `{"type":"Deep","data":{"a":${deep(101)}}}`;
      await refused(
        () => raw(urlOf(stack, target), { method: 'POST', path: '/events', headers: json, body }),
        400,
      );
    },
  );

  it('keeps data nested 90 deep (the limit is not in the way of real events)', async () => {
    const body = `{"type":"Nested","data":{"a":${deep(90)}}}`;
    const res = await raw(stack.busUrl, { method: 'POST', path: '/events', headers: json, body });
    expect(res.status).toBe(200);
  });

  it('refuses bytes that are not UTF-8 with 400 (was 201, the title stored with U+FFFD in it)', async () => {
    const body = Buffer.concat([Buffer.from('{"title":"ab'), Buffer.from([0xff]), Buffer.from('cd"}')]);
    await refused(
      () => raw(stack.urls.posts!, { method: 'POST', path: '/posts/create', headers: json, body }),
      400,
      /UTF-8/,
    );
  });

  it.each(SERVICES)(
    '%s answers a request line Node cannot parse with 400 JSON and the security headers (was a bare 400)',
    async (target) => {
      const res = await refused(
        () => raw(urlOf(stack, target), { path: '/posts/\u0080' }),
        400,
        /not valid HTTP/,
      );
      expect(res.headers['x-content-type-options']).toBe('nosniff');
    },
  );

  it.each(SERVICES)('%s answers 20 kB of headers with 431 JSON', async (target) => {
    await refused(
      () => raw(urlOf(stack, target), { path: '/healthz', headers: { 'x-big': 'x'.repeat(20_000) } }),
      431,
    );
  });

  it.each(SERVICES)('%s answers a 120 kB body with 413 JSON', async (target) => {
    const path = target === 'comments' ? `/posts/${postId}/comments` : '/events';
    const body = `{"type":"X","data":{"a":"${'x'.repeat(120_000)}"}}`;
    await refused(
      () => raw(urlOf(stack, target), { method: 'POST', path, headers: json, body }),
      413,
      /too large/,
    );
  });

  it('does not let a "__proto__" key stand in for the title', async () => {
    const body = '{"__proto__":{"title":"from the prototype"}}';
    await refused(
      () => raw(stack.urls.posts!, { method: 'POST', path: '/posts/create', headers: json, body }),
      400,
    );
    expect(Object.keys(Object.prototype)).toEqual([]);
  });

  it('refuses JSON sent as text/plain, and a body that is not JSON', async () => {
    const post = (headers: Record<string, string>, body: string) => () =>
      raw(stack.urls.posts!, { method: 'POST', path: '/posts/create', headers, body });
    await refused(post({ 'content-type': 'text/plain' }, '{"title":"x"}'), 400);
    await refused(post(json, '{"title": "unterminated'), 400, /not valid JSON/);
    await refused(post({ 'content-type': 'application/json; charset=latin1' }, '{"title":"x"}'), 415);
  });

  it('refuses a delivery claiming a seq past the head of the log with 409', async () => {
    const body = JSON.stringify({ type: 'PostCreated', data: { id: 'z', title: 'z' }, seq: 999_999_999 });
    await refused(
      () => raw(stack.urls.query!, { method: 'POST', path: '/events', headers: json, body }),
      409,
    );
  });

  it.each([
    ['/events?after=-1', /whole number/],
    ['/events?limit=10001', /at most/],
    ['/events?after=1&after=2', undefined],
    ['/events?after=%zz', undefined],
    [`/dead-letters?subscriber=${'s'.repeat(101)}`, undefined],
  ])('the bus refuses GET %s with 400', async (path, message) => {
    await refused(() => raw(stack.busUrl, { path }), 400, message);
  });

  it('refuses 1001 events in one publish, storing none', async () => {
    const body = JSON.stringify(Array.from({ length: 1001 }, () => ({ type: 'X', data: {} })));
    await refused(() => raw(stack.busUrl, { method: 'POST', path: '/events', headers: json, body }), 400);
  });

  it.each(['GET', 'POST'])('answers 400 JSON for broken percent-encoding in a path (%s)', async (method) => {
    const body = method === 'POST' ? '{"content":"x"}' : undefined;
    await refused(
      () => raw(stack.urls.comments!, { method, path: '/posts/%E0%A4%A/comments', headers: json, body }),
      400,
      /percent-encoding/,
    );
  });
});
