import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bundledServices, bundleService } from '../bundle.mjs';

/** A repository in miniature: `query` starts from a main.ts whose compiled form imports a CommonJS package. */
function writeRepository(root: string) {
  const files: Record<string, string> = {
    'node_modules/.package-lock.json': '{}\n',
    'node_modules/greeting/package.json': '{"name":"greeting","main":"index.js"}\n',
    'node_modules/greeting/index.js':
      "const os = require('node:os');\nexports.greet = (name) => `hello ${name} from ${os.platform()}`;\n",
    'query/package.json': '{"type":"module"}\n',
    'query/src/main.ts': '// compiled to dist/main.js\n',
    'query/dist/main.js':
      "import { greet } from 'greeting';\nimport { name } from './name.js';\nconsole.log(greet(name));\n",
    'query/dist/name.js': "export const name = 'query';\n",
    'posts/package.json': '{"type":"module"}\n',
    'posts/dist/index.js': "console.log('posts');\n",
  };
  for (const [file, text] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  }
}

/**
 * Runs a bundle alone, as the CommonJS script it is: under a `.cjs` name, since its folder's package is
 * `"type": "module"` (query's start file runs it through `vm.Script`).
 */
function runAsCommonJs(file: string) {
  const script = file.replace(/\.js$/, '.cjs');
  copyFileSync(file, script);
  return spawnSync(process.execPath, [script], { encoding: 'utf8' });
}

describe('scripts/bundle.mjs', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(os.tmpdir(), 'blog-bundle-repo-'));
    writeRepository(root);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('bundles the services that start from a main.ts', () => {
    expect(bundledServices(root)).toEqual(['query']);
  });

  it('makes one file that runs alone, CommonJS dependencies included, with its source map', async () => {
    const { file } = await bundleService('query', root);
    expect(file).toBe(path.join(root, 'query', 'dist', 'index.bundle.js'));
    // The dependency is inside: the bundle runs with node_modules gone.
    rmSync(path.join(root, 'node_modules'), { recursive: true });
    const run = runAsCommonJs(file);
    expect(run.stderr).toBe('');
    expect(run.stdout).toBe(`hello query from ${os.platform()}\n`);
    const map = JSON.parse(readFileSync(`${file}.map`, 'utf8')) as { sources: string[] };
    expect(map.sources).toEqual(expect.arrayContaining(['main.js', 'name.js']));
  });

  it("stamps the bundle with its compiled inputs, and the install's record for the dependencies", async () => {
    await bundleService('query', root);
    const stamp = JSON.parse(readFileSync(path.join(root, 'query', 'dist', 'index.bundle.json'), 'utf8')) as {
      inputs: Record<string, string>;
    };
    expect(Object.keys(stamp.inputs).sort()).toEqual([
      '../../node_modules/.package-lock.json',
      'main.js',
      'name.js',
    ]);
  });

  it('stamps the record of another install in its place when told (an image runs with its production install)', async () => {
    const other = path.join(root, 'production-install-record.json');
    writeFileSync(other, '{"packages":{}}\n');
    await bundleService('query', root, { installRecordOf: other });
    const stamp = JSON.parse(readFileSync(path.join(root, 'query', 'dist', 'index.bundle.json'), 'utf8')) as {
      inputs: Record<string, string>;
    };
    expect(stamp.inputs['../../node_modules/.package-lock.json']).toBe(
      createHash('sha256').update(readFileSync(other)).digest('hex'),
    );
  });

  it('carries one copy of each version of a package, and its JSON files as text for JSON.parse', async () => {
    // Two packages each with their own nested copy of the same version of `table`, which has a JSON file.
    const table = {
      'package.json': '{"name":"table","version":"1.0.0","main":"index.js"}\n',
      'index.js': "exports.rows = require('./rows.json');\n",
      'rows.json': '{"marker": "table-rows"}\n',
    };
    for (const user of ['left', 'right']) {
      const dir = path.join(root, 'node_modules', user);
      mkdirSync(path.join(dir, 'node_modules', 'table'), { recursive: true });
      writeFileSync(path.join(dir, 'package.json'), `{"name":"${user}","main":"index.js"}\n`);
      writeFileSync(path.join(dir, 'index.js'), "module.exports = require('table').rows;\n");
      for (const [file, text] of Object.entries(table)) {
        writeFileSync(path.join(dir, 'node_modules', 'table', file), text);
      }
    }
    writeFileSync(
      path.join(root, 'query', 'dist', 'main.js'),
      "import left from 'left';\nimport right from 'right';\nconsole.log(left === right, left.marker);\n",
    );
    const { file } = await bundleService('query', root);
    const run = runAsCommonJs(file);
    expect(run.stderr).toBe('');
    // One copy: both packages share one module, as a deduplicated install would.
    expect(run.stdout).toBe('true table-rows\n');
    const text = readFileSync(file, 'utf8');
    expect(text.split('table-rows').length - 1).toBe(1);
    expect(text).toContain(`JSON.parse('{"marker":"table-rows"}')`);
  });

  it('leaves the NATS client in node_modules, required only when used', async () => {
    writeFileSync(
      path.join(root, 'query', 'dist', 'main.js'),
      "export const loadNats = () => import('@nats-io/transport-node');\nconsole.log('started');\n",
    );
    const { file } = await bundleService('query', root);
    // Not resolved at build time (it is not installed here), nor at start.
    expect(runAsCommonJs(file).stdout).toBe('started\n');
    expect(readFileSync(file, 'utf8')).toContain('require("@nats-io/transport-node")');
  });
});
