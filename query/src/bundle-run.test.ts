import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/wait-for.js';
import { CACHE_WRITE_DELAY_MS, runBundle } from './bundle-run.js';

/** The built module, for a process of its own (run `npx tsc -b` first). */
const BUILT = new URL('../dist/bundle-run.js', import.meta.url).href;

declare global {
  var bundleRuns: string[] | undefined;
}

/** A CommonJS bundle that records, on each run, what its wrapper gave it and what it computed. */
const bundleText = (greeting: string) =>
  "const os = require('node:os');\n" +
  `const greet = (name) => '${greeting} ' + name + ' on ' + os.platform();\n` +
  '(globalThis.bundleRuns ??= []).push(greet(require("node:path").basename(__filename)));\n' +
  'module.exports.ran = true;\n';

describe('runBundle', () => {
  let dir: string;
  let bundle: string;
  const cacheFile = () => `${bundle}.cache`;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'blog-bundle-run-'));
    bundle = path.join(dir, 'index.bundle.js');
    globalThis.bundleRuns = [];
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    delete globalThis.bundleRuns;
  });

  it('runs the bundle as CommonJS, writes its code cache, and takes it on the next start', async () => {
    writeFileSync(bundle, bundleText('hello'));
    expect(runBundle(bundle)).toBe(false);
    await waitFor(() => existsSync(cacheFile()), { message: 'no code cache written' });
    expect(runBundle(bundle)).toBe(true);
    expect(globalThis.bundleRuns).toEqual([
      `hello index.bundle.js on ${os.platform()}`,
      `hello index.bundle.js on ${os.platform()}`,
    ]);
  });

  it("refuses the cache of another bundle, even of the same length, and writes the new bundle's", async () => {
    writeFileSync(bundle, bundleText('hello'));
    runBundle(bundle);
    await waitFor(() => existsSync(cacheFile()), { message: 'no code cache written' });
    const first = readFileSync(cacheFile());
    writeFileSync(bundle, bundleText('howdy'));
    expect(runBundle(bundle)).toBe(false);
    expect(globalThis.bundleRuns?.at(-1)).toBe(`howdy index.bundle.js on ${os.platform()}`);
    await waitFor(() => !readFileSync(cacheFile()).equals(first), { message: 'the cache was not replaced' });
    expect(runBundle(bundle)).toBe(true);
  });

  it('writes the cache as the process exits when it stops within the delay', () => {
    writeFileSync(bundle, bundleText('hello'));
    // A process of its own that runs the bundle and ends at once, long before CACHE_WRITE_DELAY_MS.
    const run = `import(${JSON.stringify(BUILT)}).then((m) => console.log(m.runBundle(process.argv[1])))`;
    // The delay's timer does not hold the process open: without the write on exit there would be no cache.
    expect(execFileSync(process.execPath, ['-e', run, bundle], { encoding: 'utf8' }).trim()).toBe('false');
    expect(existsSync(cacheFile())).toBe(true);
    expect(runBundle(bundle)).toBe(true);
  });

  it('starts without a cache where none can be written, and leaves nothing behind', async () => {
    writeFileSync(bundle, bundleText('hello'));
    // A folder where the cache would be: the write fails, and the run does not.
    mkdirSync(cacheFile());
    expect(runBundle(bundle)).toBe(false);
    expect(globalThis.bundleRuns).toHaveLength(1);
    await new Promise((resolve) => setTimeout(resolve, CACHE_WRITE_DELAY_MS + 500));
    expect(readdirSync(dir).sort()).toEqual(['index.bundle.js', 'index.bundle.js.cache']);
    expect(runBundle(bundle)).toBe(false);
  });
});
