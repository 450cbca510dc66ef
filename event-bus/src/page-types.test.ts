import { describe, expect, it } from 'vitest';
import { eventSeq, eventType, typeFilter } from './page-types.js';
import { eventJson, storedForm } from './store.js';

// The type and seq as JSON.parse reads them, from the log's own text and from any other JSON of an event.
const logText = (seq: number, event: { type: string; data: Record<string, unknown>; id?: string }) =>
  eventJson({ seq, time: '2026-01-01T00:00:00.000Z', ...storedForm(event) });

describe('eventType and eventSeq', () => {
  const events = [
    { type: 'CommentCreated', data: { id: 'c', type: 'not this one' } },
    { type: 'Odd "quoted" \\ type', data: {} },
    { type: 'T', data: {}, id: '{[","type":"Fake"' },
    { type: 'Ünïcode', data: { list: [1, 2] } },
  ];

  it('reads what JSON.parse reads, from the text the log writes', () => {
    events.forEach((event, index) => {
      const json = logText(index + 7, event);
      const parsed = JSON.parse(json) as { type: string; seq: number };
      expect(eventType(json)).toBe(parsed.type);
      expect(eventSeq(json)).toBe(parsed.seq);
    });
  });

  it('reads them from JSON in another key order (the NATS log gives its events as objects)', () => {
    const json = JSON.stringify({ data: { type: 'Nested' }, id: 'x', type: 'PostCreated', seq: 12 });
    expect(eventType(json)).toBe('PostCreated');
    expect(eventSeq(json)).toBe(12);
  });

  it('keeps only the types asked for', () => {
    const wanted = typeFilter(['CommentCreated', 'T']);
    expect(events.map((event, index) => wanted(logText(index + 1, event)))).toEqual([
      true,
      false,
      true,
      false,
    ]);
  });
});
