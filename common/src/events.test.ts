import { describe, expect, it } from 'vitest';
import {
  incomingEventSchema,
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
