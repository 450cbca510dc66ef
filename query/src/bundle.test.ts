import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { currentBundle } from './bundle.js';

describe('currentBundle', () => {
  let dir: string;
  let bundleUrl: URL;
  const input = () => path.join(dir, 'input.js');
  const writeStamp = (inputs: Record<string, string>) =>
    writeFileSync(path.join(dir, 'dist', 'index.bundle.json'), JSON.stringify({ inputs }));
  const stampOfInput = (): Record<string, string> => ({
    '../input.js': createHash('sha256').update(readFileSync(input())).digest('hex'),
  });

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'blog-bundle-'));
    mkdirSync(path.join(dir, 'dist'));
    writeFileSync(path.join(dir, 'dist', 'index.bundle.js'), 'export {};\n');
    writeFileSync(input(), 'export const answer = 42;\n');
    bundleUrl = pathToFileURL(path.join(dir, 'dist', 'index.bundle.js'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the bundle while every input it lists is as it was built from', () => {
    writeStamp(stampOfInput());
    expect(currentBundle(bundleUrl)).toBe(bundleUrl.href);
  });

  it('refuses a bundle one of whose inputs was rewritten since, even with the same size', () => {
    writeStamp(stampOfInput());
    writeFileSync(input(), 'export const answer = 43;\n');
    expect(currentBundle(bundleUrl)).toBeUndefined();
  });

  it('keeps a bundle whose inputs were copied with other file times (as into an image)', () => {
    writeStamp(stampOfInput());
    utimesSync(input(), new Date(1000), new Date(1000));
    expect(currentBundle(bundleUrl)).toBe(bundleUrl.href);
  });

  it('refuses a bundle whose input is gone, or with no stamp, an empty one or a broken one', () => {
    writeStamp(stampOfInput());
    rmSync(input());
    expect(currentBundle(bundleUrl)).toBeUndefined();
    rmSync(path.join(dir, 'dist', 'index.bundle.json'));
    expect(currentBundle(bundleUrl)).toBeUndefined();
    writeStamp({});
    expect(currentBundle(bundleUrl)).toBeUndefined();
    writeFileSync(path.join(dir, 'dist', 'index.bundle.json'), '{"inputs":');
    expect(currentBundle(bundleUrl)).toBeUndefined();
  });

  it('refuses a stamp without its bundle', () => {
    writeStamp(stampOfInput());
    rmSync(path.join(dir, 'dist', 'index.bundle.js'));
    expect(currentBundle(bundleUrl)).toBeUndefined();
  });
});
