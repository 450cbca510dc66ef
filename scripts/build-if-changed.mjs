// `npm start` and `npm run dev`: build what changed, then run scripts/dist/<script>.js in this same process
// (so that it is still the child of npm's shell, which start.js watches to stop with it).
// Plain JavaScript: it runs before anything is built.
//
//   node scripts/build-if-changed.mjs <script> [arguments for the script]
//
// `--help` is answered by the built script without building, unless its source is newer than the build.
// The TypeScript is built by `tsc -b`, itself incremental, then bundled (scripts/bundle.mjs, which is quick);
// the client's `vite build` is not incremental, so it runs only when the client's inputs hash differently
// from those of the last build.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
/** What the client's build reads: its sources, config and the locked dependency versions. */
const CLIENT_INPUTS = ['index.html', 'vite.config.ts', 'tsconfig.json', 'package.json', 'src', 'public']
  .map((name) => path.join(ROOT_DIR, 'client', name))
  .concat(path.join(ROOT_DIR, 'package-lock.json'));
const CLIENT_OUTPUT = path.join(ROOT_DIR, 'client', 'dist', 'index.html');
/** The inputs' hash at the last client build, and that build's index.html time: both must still match. */
const CLIENT_STAMP = path.join(ROOT_DIR, 'node_modules', '.cache', 'blog-client-build.json');

function run(command, args) {
  const result = spawnSync(command, args, { cwd: ROOT_DIR, stdio: 'inherit' });
  if (result.error) throw result.error;
  if (result.status !== 0) process.exit(result.status ?? 1);
}

function filesUnder(entry) {
  if (!fs.existsSync(entry)) return [];
  if (!fs.statSync(entry).isDirectory()) return [entry];
  return fs
    .readdirSync(entry, { recursive: true, withFileTypes: true })
    .filter((item) => item.isFile())
    .map((item) => path.join(item.parentPath, item.name));
}

function clientInputsHash() {
  const hash = createHash('sha256');
  for (const file of CLIENT_INPUTS.flatMap(filesUnder).sort()) {
    hash
      .update(`${path.relative(ROOT_DIR, file)}\0`)
      .update(fs.readFileSync(file))
      .update('\0');
  }
  return hash.digest('hex');
}

function readStamp() {
  try {
    return JSON.parse(fs.readFileSync(CLIENT_STAMP, 'utf8'));
  } catch {
    return undefined;
  }
}

function buildClientIfChanged() {
  const inputs = clientInputsHash();
  const stamp = readStamp();
  const builtAt = fs.existsSync(CLIENT_OUTPUT) ? fs.statSync(CLIENT_OUTPUT).mtimeMs : undefined;
  if (stamp && builtAt !== undefined && stamp.inputs === inputs && stamp.builtAt === builtAt) {
    console.log('client/dist is up to date: vite build skipped');
    return;
  }
  run('npm', ['run', 'build', '-w', 'client']);
  fs.mkdirSync(path.dirname(CLIENT_STAMP), { recursive: true });
  const record = { inputs, builtAt: fs.statSync(CLIENT_OUTPUT).mtimeMs };
  fs.writeFileSync(CLIENT_STAMP, `${JSON.stringify(record)}\n`);
}

const [script, ...args] = process.argv.slice(2);
if (!script || !/^[a-z-]+$/.test(script)) {
  console.error('usage: node scripts/build-if-changed.mjs <script in scripts/src> [arguments]');
  process.exit(2);
}
const built = path.join(ROOT_DIR, 'scripts', 'dist', `${script}.js`);
const source = path.join(ROOT_DIR, 'scripts', 'src', `${script}.ts`);
const wantsHelp = args.some((arg) => arg === '--help' || arg === '-h');
const builtIsCurrent = fs.existsSync(built) && fs.statSync(built).mtimeMs >= fs.statSync(source).mtimeMs;
if (!(wantsHelp && builtIsCurrent)) {
  run(process.execPath, [createRequire(import.meta.url).resolve('typescript/bin/tsc'), '-b']);
  run(process.execPath, [path.join(ROOT_DIR, 'scripts', 'bundle.mjs')]);
  buildClientIfChanged();
}
// The script reads its options from process.argv, as if started as `node scripts/dist/<script>.js ...`.
process.argv.splice(1, 2, built);
await import(pathToFileURL(built).href);
