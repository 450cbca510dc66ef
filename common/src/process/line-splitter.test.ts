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

  it('keeps a character whose UTF-8 bytes are cut between two chunks', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((line) => lines.push(line));
    const bytes = Buffer.from('漢字 ready\nnext 字');
    splitter.push(bytes.subarray(0, 1));
    splitter.push(bytes.subarray(1, 4));
    splitter.push(bytes.subarray(4, bytes.length - 1));
    splitter.push(bytes.subarray(bytes.length - 1));
    splitter.flush();
    expect(lines).toEqual(['漢字 ready', 'next 字']);
  });
});
