import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  errorShapeProblem,
  fingerprint,
  forbiddenKeyText,
  keptPost,
  keyOf,
  parsedBody,
  raw,
  SERVICES,
  settled,
  startBlog,
  urlOf,
  writeRoutes,
  type RawAnswer,
  type Stack,
  unsafeText,
} from './support/bad-input.js';

/**
 * Generated bad input against every route of every service, over real HTTP (the whole blog in this process,
 * the bus on real SQLite): never a 5xx, never a crash, never a state change, always a 4xx JSON
 * `{errors: [{message}]}`. The nastiest cases found stay as plain tests in bad-input.test.ts.
 */
let stack: Stack;
let postId: string;

beforeAll(async () => {
  stack = await startBlog();
  // Something to protect: a post with a comment, moderated.
  postId = await keptPost(stack, 'kept too');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !stack.bus.deliveries.status().every((s) => s.lag === 0)) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
});
afterAll(() => stack?.stop());

const RUNS = 150;

// ---------------------------------------------------------------------------------------------- generators

const nastyKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'valueOf'),
  fc.constantFrom('title', 'content', 'type', 'data', 'id', 'seq', 'time', 'status', 'postId', 'events'),
  fc.string({ maxLength: 8 }),
);

/** JSON text (not values: `__proto__` as a key survives only in text) of wrong types and odd keys. */
const { json: jsonText } = fc.letrec<{ json: string }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('null', 'true', 'false', '0', '-1', '1e308', '""', '"orange"', '[]', '{}'),
    fc.double().map((n) => JSON.stringify(n)),
    fc.string({ maxLength: 20, unit: 'binary' }).map((s) => JSON.stringify(s)),
    unsafeText.map((s) => JSON.stringify(s)),
    fc.array(tie('json'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
    fc
      .array(fc.tuple(nastyKey, tie('json')), { maxLength: 5 })
      .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
    fc.tuple(forbiddenKeyText, tie('json')).map(([key, value]) => `{${key}:${value}}`),
  ),
}));

const knownType = fc.constantFrom('PostCreated', 'CommentCreated', 'CommentModerated', 'CommentUpdated');

/** Event envelopes that are almost right: a known type with wrong data, wrong field types, missing fields. */
const envelopeText = fc
  .record(
    {
      type: fc.oneof(
        knownType.map((t) => JSON.stringify(t)),
        jsonText,
      ),
      data: jsonText,
      id: fc.oneof(jsonText, fc.constant('"' + 'x'.repeat(201) + '"')),
      seq: fc.oneof(jsonText, fc.constantFrom('0', '-3', '1.5', '999999999', '"1"')),
    },
    { requiredKeys: [] },
  )
  .map(
    (fields) =>
      `{${Object.entries(fields)
        .map(([k, v]) => `"${k}":${v}`)
        .join(',')}}`,
  );

/** Valid JSON nested past any sane depth, inside an otherwise plausible event or body. */
const deepText = fc
  .integer({ min: 500, max: 45_000 })
  .map(
    (depth) =>
      `{"type":"Deep","title":"t","content":"c","data":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}`,
  );

/** A plausible body with bytes that are not UTF-8 inside a string. */
const invalidUtf8 = fc
  .tuple(
    fc.constantFrom('title', 'content', 'type'),
    fc.constantFrom([0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0x80]),
  )
  .map(([key, bytes]) =>
    Buffer.concat([Buffer.from(`{"${key}":"ab`), Buffer.from(bytes), Buffer.from('cd","data":{}}')]),
  );

const bodyBytes: fc.Arbitrary<Buffer> = fc.oneof(
  jsonText.map((text) => Buffer.from(text)),
  envelopeText.map((text) => Buffer.from(text)),
  envelopeText.map((text) => Buffer.from(`[${text},${text}]`)),
  deepText.map((text) => Buffer.from(text)),
  invalidUtf8,
  fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
  fc.constant(Buffer.from(`{"title":"${'x'.repeat(120_000)}"}`)),
  fc.constant(Buffer.from('{"title": "unterminated')),
);

const contentType = fc.constantFrom(
  undefined,
  'application/json',
  'application/json; charset=utf-8',
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/json; charset=latin1',
  'application/json; charset=nonsense',
);

// ---------------------------------------------------------------------------------------------- the checks

/** A 4xx with the error shape, and every piece of state as it was. */
async function expectRefusedUnchanged(answer: () => Promise<RawAnswer>, what: string) {
  await settled(stack);
  const before = fingerprint(stack);
  const res = await answer();
  expect(res.status, `${what}: ${res.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400);
  expect(res.status, `${what}: ${res.body.slice(0, 300)}`).toBeLessThan(500);
  expect(errorShapeProblem(res), what).toBeUndefined();
  expect(fingerprint(stack), `${what} changed the state`).toBe(before);
  return res;
}

/** A 400 whose errors name `field` (with a message matching `message`), and nothing changed. */
async function expect400Naming(
  answer: () => Promise<RawAnswer>,
  what: string,
  field: string,
  message: RegExp,
) {
  const res = await expectRefusedUnchanged(answer, what);
  expect(res.status, `${what}: ${res.body.slice(0, 300)}`).toBe(400);
  const errors = (JSON.parse(res.body) as { errors: { field?: string; message: string }[] }).errors;
  expect(errors, what).toContainEqual({ field, message: expect.stringMatching(message) });
}

async function expectAllAlive() {
  for (const target of SERVICES) {
    expect((await raw(urlOf(stack, target), { path: '/healthz' })).status, target).toBe(200);
  }
}

describe('bad input, generated (fast-check)', () => {
  it(
    'bodies and content types on every write route: 4xx JSON, nothing changed',
    { timeout: 60_000 },
    async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...writeRoutes),
          bodyBytes,
          contentType,
          async (route, bytes, type) => {
            fc.pre(!route.valid(parsedBody(bytes, type)));
            const path = route.path(postId);
            await expectRefusedUnchanged(
              () =>
                raw(urlOf(stack, route.target), {
                  method: 'POST',
                  path,
                  headers: type ? { 'content-type': type } : {},
                  body: bytes,
                }),
              `POST ${route.target} ${path} (${type}) ${bytes.subarray(0, 120).toString()}`,
            );
          },
        ),
        { numRuns: RUNS * 2 },
      );
      await expectAllAlive();
    },
  );

  it(
    'paths, methods and query strings on every service: never a 5xx, errors in JSON, nothing changed',
    { timeout: 60_000 },
    async () => {
      const segment = fc.oneof(
        fc.constantFrom(
          'posts',
          'events',
          'comments',
          'create',
          'dead-letters',
          'subscribers',
          '..',
          '',
          '%',
          '%zz',
        ),
        fc.constantFrom(
          '%E0%A4%A',
          '%C0%AF',
          '%00',
          '%2F',
          '%FF',
          '__proto__',
          'constructor',
          '%%',
          '\u00e9',
        ),
        fc.string({
          maxLength: 12,
          unit: fc.integer({ min: 0x21, max: 0xff }).map((c) => String.fromCharCode(c)),
        }),
        fc.constant('x'.repeat(5000)),
      );
      const query = fc.oneof(
        fc.constant(''),
        fc
          .array(
            fc.tuple(
              fc.constantFrom('after', 'limit', 'subscriber', '__proto__', 'x'),
              fc.oneof(jsonText, fc.constantFrom('-1', '1e3', '99999999999999999', '%zz', '', '10001')),
            ),
            { maxLength: 3 },
          )
          .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')}`),
      );
      const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD');
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...SERVICES),
          method,
          fc.array(segment, { minLength: 1, maxLength: 4 }),
          query,
          async (target, verb, segments, search) => {
            const path = `/${segments.join('/')}${search}`.replace(/[^\x21-\xff]/g, '');
            const before = fingerprint(stack);
            const res = await raw(urlOf(stack, target), { method: verb, path });
            const what = `${verb} ${target} ${path.slice(0, 200)}`;
            expect(res.status, `${what}: ${res.body.slice(0, 300)}`).toBeLessThan(500);
            if (res.status >= 400 && verb !== 'HEAD') {
              expect(
                errorShapeProblem(res),
                `${what}: ${res.status} ${JSON.stringify(res.headers)} ${res.body.slice(0, 200)}`,
              ).toBeUndefined();
            }
            expect(fingerprint(stack), `${what} changed the state`).toBe(before);
          },
        ),
        { numRuns: RUNS * 2 },
      );
      await expectAllAlive();
    },
  );

  it('odd headers on every write route: 4xx JSON, nothing changed', { timeout: 60_000 }, async () => {
    const headers = fc.record(
      {
        'content-type': contentType.map((t) => t ?? 'application/json'),
        'content-encoding': fc.constantFrom('gzip', 'deflate', 'br', 'x-unknown', 'gzip, gzip'),
        'x-events-reply': fc.constantFrom('accept', 'ACCEPT', '', '\u00ff'),
        'x-events-batch': fc.constantFrom('accept', 'nonsense'),
        origin: fc.constantFrom('http://evil.example', 'null', 'http://posts.com'),
        accept: fc.constantFrom('text/html', '*/*', 'application/xml'),
      },
      { requiredKeys: ['content-encoding'] },
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...writeRoutes), bodyBytes, headers, async (route, bytes, sent) => {
        const path = route.path(postId);
        // A compressed body that is not compressed data (or an unknown coding) is wrong input, however right the JSON.
        await expectRefusedUnchanged(
          () => raw(urlOf(stack, route.target), { method: 'POST', path, headers: sent, body: bytes }),
          `POST ${route.target} ${path} ${JSON.stringify(sent)} ${bytes.subarray(0, 80).toString()}`,
        );
      }),
      { numRuns: RUNS },
    );
    await expectAllAlive();
  });

  it(
    'a title or comment holding control or bidi-override characters: 400 naming the field, nothing changed',
    { timeout: 60_000 },
    async () => {
      const json = { 'content-type': 'application/json' };
      const textRoutes = [
        { target: 'posts', path: () => '/posts/create', field: 'title', body: (t: string) => ({ title: t }) },
        { target: 'posts', path: () => '/posts', field: 'title', body: (t: string) => ({ title: t }) },
        {
          target: 'comments',
          path: () => `/posts/${postId}/comments`,
          field: 'content',
          body: (t: string) => ({ content: t }),
        },
        {
          target: 'bus',
          path: () => '/events',
          field: 'data.title',
          body: (t: string) => ({ type: 'PostCreated', data: { id: 'p-unsafe', title: t } }),
        },
        {
          target: 'bus',
          path: () => '/events',
          field: 'data.content',
          body: (t: string) => ({
            type: 'CommentCreated',
            data: { id: 'c-unsafe', postId, content: t, status: 'pending' },
          }),
        },
      ] as const;
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...textRoutes), unsafeText, async (route, text) => {
          const path = route.path();
          await expect400Naming(
            () =>
              raw(urlOf(stack, route.target), {
                method: 'POST',
                path,
                headers: json,
                body: JSON.stringify(route.body(text)),
              }),
            `POST ${route.target} ${path} ${JSON.stringify(text)}`,
            route.field,
            /control or bidirectional-override characters \(found U\+[0-9A-F]{4}\)/,
          );
        }),
        { numRuns: RUNS },
      );
      await expectAllAlive();
    },
  );

  it(
    'a body with a __proto__ or constructor key at any depth, on every write route: 400 naming the key',
    { timeout: 60_000 },
    async () => {
      // A path of keys and array positions down to the key, inside a body the route would otherwise take.
      const step = fc.oneof(
        fc.constantFrom('a', 'extra', 'data2', 'x y').map((key) => ({ key })),
        fc.integer({ min: 0, max: 2 }).map((index) => ({ index })),
      );
      const nested = fc
        .tuple(fc.constantFrom('a', 'extra'), fc.array(step, { maxLength: 4 }), forbiddenKeyText, jsonText)
        .map(([first, steps, key, value]) => {
          let text = `{${key}:${value}}`;
          for (const s of [...steps].reverse()) {
            text =
              'key' in s ? `{"z":1,${JSON.stringify(s.key)}:${text}}` : `[${'0,'.repeat(s.index)}${text}]`;
          }
          const field = [first, ...steps.map((s) => ('key' in s ? s.key : String(s.index))), keyOf(key)];
          return { member: `${JSON.stringify(first)}:${text}`, field: field.join('.'), key: keyOf(key) };
        });
      const valid = {
        title: '"title":"t"',
        content: '"content":"c"',
        event: '"type":"PostCreated","data":{"id":"p-keys","title":"t"}',
      };
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...writeRoutes), nested, async (route, { member, field, key }) => {
          const path = route.path(postId);
          const base =
            route.field === 'title' ? valid.title : route.field === 'content' ? valid.content : valid.event;
          const body = `{${base},${member}}`;
          await expect400Naming(
            () =>
              raw(urlOf(stack, route.target), {
                method: 'POST',
                path,
                headers: { 'content-type': 'application/json' },
                body,
              }),
            `POST ${route.target} ${path} ${body.slice(0, 200)}`,
            field,
            new RegExp(`"${key}"`),
          );
        }),
        { numRuns: RUNS },
      );
      await expectAllAlive();
      expect(Object.keys(Object.prototype)).toEqual([]);
    },
  );
});
