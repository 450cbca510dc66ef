import { describe, expect, it } from 'vitest';
import { formatPinoLine, formatServiceLine } from './logs.js';

describe('service log lines', () => {
  const time = new Date(2025, 0, 2, 3, 4, 5, 67).toISOString();

  it('shows time, level, message and the event fields of a pino line', () => {
    const line = JSON.stringify({
      level: 30,
      time,
      service: 'posts',
      msg: 'event applied',
      id: 'abc',
      seq: 7,
      type: 'PostCreated',
      other: 'hidden',
    });
    expect(formatServiceLine('posts', line)).toBe(
      'posts      03:04:05.067 INFO  event applied id=abc seq=7 type=PostCreated',
    );
  });

  it('shows the error message of an error line', () => {
    const line = JSON.stringify({
      level: 50,
      time,
      msg: 'delivery failed',
      err: { message: 'socket hang up' },
    });
    expect(formatPinoLine(line)).toBe('03:04:05.067 ERROR delivery failed err="socket hang up"');
  });

  it('prints other lines as they are', () => {
    expect(formatServiceLine('tsc', '[nodemon] restarting due to changes...', { width: 4 })).toBe(
      'tsc  [nodemon] restarting due to changes...',
    );
    expect(formatPinoLine('{"not": "pino"}')).toBeUndefined();
    expect(formatPinoLine('{broken')).toBeUndefined();
  });
});
