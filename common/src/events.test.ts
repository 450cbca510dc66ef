import { describe, expect, it } from 'vitest';
import {
  eventDataSchemas,
  incomingEventSchema,
  isKnownEventType,
  outgoingEventSchema,
  publishDataSchemas,
  unsafeCharacter,
  validateEvent,
} from './events.js';
import { parseDelivery } from './service.js';

describe('validateEvent', () => {
  it('accepts the four course events and keeps extra fields', () => {
    const { event, issues } = validateEvent(outgoingEventSchema, {
      type: 'CommentModerated',
      data: { id: 'c1', postId: 'p1', status: 'approved', content: 'hi', extra: 1 },
      traceId: 't',
    });
    expect(issues).toEqual([]);
    expect(event).toMatchObject({ data: { extra: 1 }, traceId: 't' });
  });

  it('accepts an unknown type unchecked, so learners can add events', () => {
    expect(validateEvent(outgoingEventSchema, { type: 'PostLiked', data: { anything: [1] } }).issues).toEqual(
      [],
    );
  });

  it.each([
    [null, 'body'],
    [[], 'body'],
    [{ data: {} }, 'type'],
    [{ type: '', data: {} }, 'type'],
    [{ type: 'X', data: 'text' }, 'data'],
    [{ type: 'X', data: [] }, 'data'],
    [{ type: 'PostCreated', data: { id: 'p1' } }, 'data.title'],
    [{ type: 'PostCreated', data: { id: 5, title: 't' } }, 'data.id'],
    [
      { type: 'CommentModerated', data: { id: 'c', postId: 'p', status: 'pending', content: '' } },
      'data.status',
    ],
    [{ type: 'X', data: {}, id: '' }, 'id'],
  ])('refuses %j naming the field %s', (input, field) => {
    const { event, issues } = validateEvent(outgoingEventSchema, input);
    expect(event).toBeUndefined();
    expect(issues.map((issue) => issue.field)).toContain(field);
  });

  it('checks seq on incoming events', () => {
    expect(validateEvent(incomingEventSchema, { type: 'X', data: {}, seq: 0 }).issues[0]?.field).toBe('seq');
    expect(validateEvent(incomingEventSchema, { type: 'X', data: {}, seq: 3 }).issues).toEqual([]);
  });
});

describe('parseDelivery', () => {
  it('takes one event or a batch', () => {
    expect(parseDelivery({ type: 'X', data: {} })).toHaveLength(1);
    expect(
      parseDelivery([
        { type: 'X', data: {}, seq: 1 },
        { type: 'Y', data: {}, seq: 2 },
      ]),
    ).toHaveLength(2);
  });

  it('refuses the whole batch when one event is malformed, naming its index', () => {
    expect(() =>
      parseDelivery([
        { type: 'X', data: {} },
        { type: 'PostCreated', data: {} },
      ]),
    ).toThrow(
      expect.objectContaining({
        status: 400,
        errors: expect.arrayContaining([expect.objectContaining({ field: '1.data.id' })]),
      }),
    );
  });

  it('refuses a missing body', () => {
    expect(() => parseDelivery(undefined)).toThrow(expect.objectContaining({ status: 400 }));
  });
});

describe('unsafeCharacter', () => {
  it('finds every control character and bidi embedding, override and isolate, and nothing around them', () => {
    const found = (code: number) => unsafeCharacter(`a${String.fromCodePoint(code)}b`);
    const unsafe = [0x00, 0x09, 0x0a, 0x0d, 0x1f, 0x7f, 0x80, 0x9f, 0x202a, 0x202e, 0x2066, 0x2069];
    for (const code of unsafe) expect(found(code), code.toString(16)).toMatch(/^U\+[0-9A-F]{4}$/);
    // Their neighbours, the bidi marks, the line and paragraph separators, a zero-width joiner.
    const fine = [0x20, 0x7e, 0xa0, 0x2029, 0x202f, 0x2065, 0x206a, 0x200e, 0x200f, 0x061c, 0x200d];
    for (const code of fine) expect(found(code), code.toString(16)).toBeUndefined();
    expect(unsafeCharacter('evil\u202egnp.exe')).toBe('U+202E');
    expect(unsafeCharacter('😀\u0007')).toBe('U+0007');
  });

  it('is checked at publish for the text a person wrote, and not on delivery', () => {
    const post = { type: 'PostCreated', data: { id: 'p', title: 'a\u202eb' } };
    expect(validateEvent(outgoingEventSchema, post, '', publishDataSchemas).issues).toEqual([
      { field: 'data.title', message: expect.stringContaining('(found U+202E)') },
    ]);
    expect(validateEvent(incomingEventSchema, post).issues).toEqual([]);
    // A moderation carries a copy of a stored comment's text: taken as the log holds it.
    const moderated = {
      type: 'CommentModerated',
      data: { id: 'c', postId: 'p', status: 'approved', content: 'a\nb' },
    };
    expect(validateEvent(outgoingEventSchema, moderated, '', publishDataSchemas).issues).toEqual([]);
  });
});

describe('validateEvent without zod for what is plainly valid', () => {
  const long = (n: number) => 'x'.repeat(n);
  const comment = { id: 'c1', postId: 'p1', content: 'hi' };
  const samples: unknown[] = [
    { type: 'PostCreated', data: { id: 'p1', title: 'T' } },
    { type: 'PostCreated', data: { id: long(200), title: long(10_000) } },
    { type: 'PostCreated', data: { id: long(201), title: 'T' } },
    { type: 'PostCreated', data: { id: 'p1', title: long(10_001) } },
    { type: 'PostCreated', data: { id: '', title: 'T' } },
    { type: 'PostCreated', data: { id: 'p1', title: 'a\u0007b' } },
    { type: 'PostCreated', data: { id: 'p1' } },
    { type: 'CommentCreated', data: { ...comment, status: 'pending' } },
    { type: 'CommentCreated', data: { ...comment, content: 'x\u202Ey', status: 'pending' } },
    { type: 'CommentCreated', data: { ...comment, status: 'approved' } },
    { type: 'CommentModerated', data: { ...comment, status: 'rejected' } },
    { type: 'CommentModerated', data: { ...comment, status: 'pending' } },
    { type: 'CommentUpdated', data: { ...comment, status: 'pending' } },
    { type: 'CommentUpdated', data: { ...comment, postId: 7, status: 'approved' } },
    { type: 'CommentUpdated', data: { ...comment, status: 'maybe' } },
    { type: 'PostLiked', data: {} },
    { type: '', data: {} },
    { type: long(201), data: {} },
    { type: 'X', data: [] },
    { type: 'X', data: null },
    { type: 'X', data: {}, id: '' },
    { type: 'X', data: {}, id: long(201) },
    { type: 'X', data: {}, id: 5 },
    { type: 'X', data: {}, seq: 1, time: 't' },
    { type: 'X', data: {}, seq: 0 },
    { type: 'X', data: {}, seq: 1.5 },
    { type: 'X', data: {}, seq: '1' },
    { type: 'X', data: {}, seq: 2 ** 60 },
    { type: 'X', data: {}, time: 5 },
    ['X'],
    'X',
    null,
  ];
  const bySchemas = (
    schema: typeof outgoingEventSchema,
    dataSchemas: typeof eventDataSchemas,
    input: unknown,
  ) => {
    const envelope = schema.safeParse(input);
    if (!envelope.success) return false;
    const { type, data } = envelope.data;
    return !isKnownEventType(type) || dataSchemas[type].safeParse(data).success;
  };

  it.each([
    ['delivered', incomingEventSchema, eventDataSchemas],
    ['published', outgoingEventSchema, publishDataSchemas],
  ] as const)('takes exactly what the schemas take, %s', (_what, schema, dataSchemas) => {
    for (const input of samples) {
      const taken = validateEvent(schema, input, '', dataSchemas).event !== undefined;
      expect(taken, JSON.stringify(input).slice(0, 80)).toBe(bySchemas(schema, dataSchemas, input));
    }
  });
});
