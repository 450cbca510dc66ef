import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import vm from 'node:vm';

/**
 * How long after the bundle starts its code cache is written: by then the service has run its boot and the
 * first pages of its catch-up, so the cache holds the code of every function those called.
 */
export const CACHE_WRITE_DELAY_MS = 1000;
/** CommonJS's wrapper: the bundle is a CommonJS script (scripts/bundle.mjs). */
const WRAPPER = ['(function (exports, require, module, __filename, __dirname) {', '\n})'] as const;

/**
 * Runs the bundle at `bundle` (a path) with V8's code cache beside it (`<bundle>.cache`): the compiled code
 * of the functions a previous start ran, so that a start neither parses the bundle nor compiles what it
 * runs. The cache's first 32 bytes are the SHA-256 of the bundle with Node's version and architecture, so
 * it serves only the bundle it was made from (V8 itself refuses one made with other flags). With none, or
 * one refused, a new one is written once the service has run a while, or as it exits if sooner; where the folder cannot be written
 * (a read-only image) the service starts as without it. Returns whether V8 took the cache.
 */
export function runBundle(bundle: string): boolean {
  const source = readFileSync(bundle, 'utf8');
  const cacheFile = `${bundle}.cache`;
  const key = createHash('sha256').update(source).update(`\n${process.version} ${process.arch}`).digest();
  const cachedData = readCache(cacheFile, key);
  const script = new vm.Script(WRAPPER[0] + source + WRAPPER[1], {
    filename: bundle,
    cachedData,
  });
  const run = script.runInThisContext() as (...args: unknown[]) => void;
  const module = { exports: {} };
  run.call(module.exports, module.exports, createRequire(bundle), module, bundle, path.dirname(bundle));
  const taken = cachedData !== undefined && script.cachedDataRejected !== true;
  if (!taken) {
    // Also on exit: a service stopped within the delay (a test, a bench's start) still leaves its cache.
    const write = () => {
      clearTimeout(timer);
      process.off('exit', write);
      writeCache(cacheFile, key, script);
    };
    const timer = setTimeout(write, CACHE_WRITE_DELAY_MS).unref();
    process.on('exit', write);
  }
  return taken;
}

function readCache(cacheFile: string, key: Buffer): Buffer | undefined {
  try {
    const cache = readFileSync(cacheFile);
    return cache.subarray(0, key.length).equals(key) ? cache.subarray(key.length) : undefined;
  } catch {
    return undefined;
  }
}

/** Written whole under another name, then renamed: a replica starting meanwhile reads all of it or none. */
function writeCache(cacheFile: string, key: Buffer, script: vm.Script): void {
  const part = `${cacheFile}.${process.pid}.part`;
  try {
    writeFileSync(part, Buffer.concat([key, script.createCachedData()]));
    renameSync(part, cacheFile);
  } catch {
    rmSync(part, { force: true });
  }
}
