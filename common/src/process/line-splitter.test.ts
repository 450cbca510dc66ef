import { describe, expect, it } from 'vitest';
import { LineSplitter } from './line-splitter.js';

describe('LineSplitter', () => {
  it('splits chunks into whole lines', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line));
    splitter.push('one\ntw');
    splitter.push('o\r\n\nthr');
    expect(lines).toEqual(['one', 'two']);
    splitter.flush();
    expect(lines).toEqual(['one', 'two', 'thr']);
  });
});
