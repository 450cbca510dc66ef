// The single-file build of the services that start from one (a `src/main.ts`): `<service>/dist/main.js` and
// everything it imports, @blog/common and the dependencies included, bundled by esbuild into
// `<service>/dist/index.bundle.js` with its source map. Node then reads and compiles one file instead of
// hundreds, which is most of a service's boot (docs/performance.md, "Start-up").
// Plain JavaScript, run after `tsc -b` (`npm run build`, `npm start`):
//
//   node scripts/bundle.mjs [service ...]        # default: every service with a src/main.ts
//   node scripts/bundle.mjs query --install-record FILE
//
// `--install-record FILE`: the bundle will run with another install than this tree's (an image's
// production-only `npm ci`), whose node_modules/.package-lock.json is FILE now: the stamp lists FILE's
// content hash in its place.
//
// Beside the bundle, `index.bundle.json` lists every compiled file it was built from with the SHA-256 of its
// content, and for the dependencies npm's record of the install (node_modules/.package-lock.json, rewritten
// by every install): the service's start file runs the bundle only while they all still match, so a rebuild
// (`npm run dev`, a `tsc -b` alone) or a new install is never hidden by an older bundle. Content, not file
// times: an image's COPY keeps whole seconds of a time only, and a copy is as current as its original.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';

const ROOT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SERVICES = ['posts', 'comments', 'moderation', 'query', 'event-bus'];
/** Native addons cannot be bundled: loaded from node_modules as before. */
const EXTERNAL = ['better-sqlite3'];
/** The dependencies are CommonJS that `require` Node's modules: an ES module bundle gives them a `require`. */
const REQUIRE_BANNER =
  "import { createRequire as createRequireOfBundle } from 'node:module';\n" +
  'const require = createRequireOfBundle(import.meta.url);';

/** Bundles one service; resolves with the bundle's path and size. */
export async function bundleService(service, rootDir = ROOT_DIR, { installRecordOf } = {}) {
  const dist = path.join(rootDir, service, 'dist');
  const outfile = path.join(dist, 'index.bundle.js');
  const result = await build({
    entryPoints: [path.join(dist, 'main.js')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Minified, it is a third smaller to read and parse; the source map gives the stack traces their names.
    minify: true,
    keepNames: true,
    sourcemap: true,
    external: EXTERNAL,
    banner: { js: REQUIRE_BANNER },
    metafile: true,
    logLevel: 'warning',
    absWorkingDir: rootDir,
  });
  const inputs = {};
  const record = (file, contentOf = file) => {
    inputs[path.relative(dist, file)] = createHash('sha256').update(fs.readFileSync(contentOf)).digest('hex');
  };
  // Hundreds of dependency files would cost the start file tens of ms to check: the install's record stands
  // for them (when there is none, each is listed).
  const installRecord = path.join(rootDir, 'node_modules', '.package-lock.json');
  const byRecord = fs.existsSync(installRecord);
  if (byRecord) record(installRecord, installRecordOf ?? installRecord);
  for (const input of Object.keys(result.metafile.inputs)) {
    const file = path.resolve(rootDir, input);
    if (!(byRecord && file.split(path.sep).includes('node_modules'))) record(file);
  }
  fs.writeFileSync(path.join(dist, 'index.bundle.json'), `${JSON.stringify({ inputs })}\n`);
  return { file: outfile, bytes: fs.statSync(outfile).size };
}

/** The services that start from a `src/main.ts`, so that their start file can choose the bundle. */
export function bundledServices(rootDir = ROOT_DIR) {
  return SERVICES.filter((service) => fs.existsSync(path.join(rootDir, service, 'src', 'main.ts')));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    options: { 'install-record': { type: 'string' } },
    allowPositionals: true,
  });
  const options = { installRecordOf: values['install-record'] };
  for (const service of positionals.length > 0 ? positionals : bundledServices()) {
    const { file, bytes } = await bundleService(service, ROOT_DIR, options);
    console.log(`${path.relative(ROOT_DIR, file)}: ${(bytes / 1024).toFixed(0)} KiB`);
  }
}
