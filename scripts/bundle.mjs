// The single-file build of the services that start from one (a `src/main.ts`): `<service>/dist/main.js` and
// everything it imports, @blog/common and the dependencies included, bundled by esbuild into
// `<service>/dist/index.bundle.js` with its source map: a CommonJS script, which the service's start file runs
// through `vm.Script` with V8's code cache of a previous start (query/src/bundle-run.ts). Node then reads one
// file instead of hundreds, and compiles little of it, which is most of a service's boot (docs/performance.md,
// "Start-up").
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
/**
 * Loaded from node_modules, not carried in the bundle: native addons, which cannot be bundled; and the NATS
 * client, which `common` imports only when a service uses NATS (common/src/nats-libraries.ts), so a service
 * on the HTTP bus never reads it; and ws's optional native helpers, which it tries to require and goes
 * without when they are not installed (they are not).
 */
const EXTERNAL = ['better-sqlite3', '@nats-io/*', 'bufferutil', 'utf-8-validate'];

/** Bundles one service; resolves with the bundle's path and size. */
export async function bundleService(service, rootDir = ROOT_DIR, { installRecordOf } = {}) {
  const dist = path.join(rootDir, service, 'dist');
  const outfile = path.join(dist, 'index.bundle.js');
  const result = await build({
    entryPoints: [path.join(dist, 'main.js')],
    outfile,
    bundle: true,
    platform: 'node',
    // A CommonJS script, so that query's start file can run it with V8's code cache (vm.Script); a dynamic
    // import() becomes a require(), since a script's import() fails on Node 20 once its code comes from a cache.
    format: 'cjs',
    target: 'node20',
    supported: { 'dynamic-import': false },
    // Minified, it is a third smaller to read and parse; the source map gives the stack traces their names.
    minify: true,
    keepNames: true,
    sourcemap: true,
    external: EXTERNAL,
    plugins: [onePerVersion(rootDir), loadedOnUse(rootDir, service), englishZod(), jsonAsText()],
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

/**
 * One copy of each version of a package: npm nests an identical copy under every package whose range the
 * top-level version does not meet (four of mime-types and its 150 kB table, evaluated at start), and a
 * bundle would carry each. Of the copies of one name and version, the one whose folder sorts first stands
 * for the others, whatever order the build resolves them in.
 */
function onePerVersion(rootDir) {
  let copies;
  return {
    name: 'one-per-version',
    setup(build) {
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.pluginData === 'one-per-version' || args.kind === 'entry-point') return undefined;
        const resolved = await build.resolve(args.path, {
          kind: args.kind,
          resolveDir: args.resolveDir,
          importer: args.importer,
          pluginData: 'one-per-version',
        });
        if (resolved.errors.length > 0 || resolved.external) return resolved;
        const copy = packageCopyOf(resolved.path);
        if (!copy) return resolved;
        copies ??= packageCopies(path.join(rootDir, 'node_modules'));
        const first = copies.get(`${copy.name}@${copy.version}`)?.[0] ?? copy.dir;
        return { ...resolved, path: path.join(first, path.relative(copy.dir, resolved.path)) };
      });
    },
  };
}

/** The package a file of node_modules belongs to: its folder, name and version. */
function packageCopyOf(file) {
  const parts = file.split(path.sep);
  const at = parts.lastIndexOf('node_modules');
  if (at < 0) return undefined;
  const length = parts[at + 1]?.startsWith('@') ? 3 : 2;
  return packageAt(parts.slice(0, at + length).join(path.sep));
}

function packageAt(dir) {
  try {
    const { name, version } = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    return name && version ? { dir, name, version } : undefined;
  } catch {
    return undefined;
  }
}

/** Every package folder under `nodeModules`, nested ones included, by name and version, sorted. */
function packageCopies(nodeModules, found = new Map()) {
  const entries = fs.existsSync(nodeModules) ? fs.readdirSync(nodeModules, { withFileTypes: true }) : [];
  for (const entry of entries) {
    if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
    const dir = path.join(nodeModules, entry.name);
    if (entry.name.startsWith('@')) {
      packageCopies(dir, found);
      continue;
    }
    const copy = packageAt(dir);
    if (copy) {
      const key = `${copy.name}@${copy.version}`;
      found.set(key, [...(found.get(key) ?? []), dir].sort());
    }
    packageCopies(path.join(dir, 'node_modules'), found);
  }
  return found;
}

/**
 * What a package loads only on its first use stays in node_modules, read then as without the bundle:
 * iconv-lite's encodings (its code pages' tables, half a megabyte, read on the first body decoded). Only
 * from the copy at the top of node_modules, the one the bundle's `require` finds from `<service>/dist`.
 */
function loadedOnUse(rootDir, service) {
  const topCopy = path.join(rootDir, 'node_modules', 'iconv-lite', 'lib', 'index.js');
  const shadowed = fs.existsSync(path.join(rootDir, service, 'node_modules', 'iconv-lite'));
  return {
    name: 'loaded-on-use',
    setup(build) {
      build.onResolve({ filter: /^\.\.\/encodings$/ }, (args) =>
        args.importer === topCopy && !shadowed ? { path: 'iconv-lite/encodings', external: true } : undefined,
      );
    },
  };
}

/**
 * zod's messages in English only: zod sets its English locale itself, and its namespace `z` would carry
 * every other language (`z.locales`), which no service uses, into the bundle.
 */
function englishZod() {
  return {
    name: 'english-zod',
    setup(build) {
      build.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
        args.importer.includes(`${path.sep}zod${path.sep}`)
          ? {
              path: path.join(path.dirname(args.importer), '..', 'locales', 'en.js'),
              namespace: 'english-zod',
            }
          : undefined,
      );
      build.onLoad({ filter: /.*/, namespace: 'english-zod' }, (args) => ({
        contents: `export { default as en } from ${JSON.stringify(args.path)};\n`,
        resolveDir: path.dirname(args.path),
      }));
    },
  };
}

/**
 * A JSON file of a dependency (mime-db's table) as its text given to `JSON.parse`, which V8 reads faster
 * than the same object as a JavaScript literal, the form esbuild gives it.
 */
function jsonAsText() {
  return {
    name: 'json-as-text',
    setup(build) {
      build.onLoad({ filter: /[\\/]node_modules[\\/].*\.json$/ }, (args) => {
        const text = JSON.stringify(JSON.parse(fs.readFileSync(args.path, 'utf8')));
        return { contents: `module.exports = JSON.parse(${JSON.stringify(text)});\n`, loader: 'js' };
      });
    },
  };
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
