import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, type URL } from 'node:url';

/**
 * The bundle at `bundleUrl` if it was built from exactly the files on disk now, else undefined. Its stamp
 * (`<name>.json` beside it, written by scripts/bundle.mjs) lists every input with the SHA-256 of its content
 * (a copy, such as an image's, keeps it current; its file times may differ): a rebuild of any (`npm run dev`, a `tsc -b` alone) or a missing stamp means the modules run instead, so an
 * older bundle never runs in place of newer code. Reads only `node:` modules: it runs before any other.
 */
export function currentBundle(bundleUrl: URL): string | undefined {
  const bundle = fileURLToPath(bundleUrl);
  const dir = path.dirname(bundle);
  try {
    const stamp = JSON.parse(readFileSync(bundle.replace(/\.js$/, '.json'), 'utf8')) as {
      inputs?: Record<string, string>;
    };
    const inputs = Object.entries(stamp.inputs ?? {});
    if (inputs.length === 0) return undefined;
    for (const [file, sha256] of inputs) {
      const now = createHash('sha256')
        .update(readFileSync(path.resolve(dir, file)))
        .digest('hex');
      if (now !== sha256) return undefined;
    }
    statSync(bundle);
    return bundleUrl.href;
  } catch {
    return undefined;
  }
}
