import { describe, expect, it } from 'vitest';
import { incomingEventSchema, outgoingEventSchema, validateEvent } from './events.js';
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
