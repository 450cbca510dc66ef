import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

// The docs name files, npm scripts and commands; a learner follows them to the letter. These tests keep
// every such name true: a renamed file or script fails here, not in a learner's terminal.

const ROOT = path.resolve(import.meta.dirname, '..');
const run = promisify(execFile);

/** README.md and every page of docs/ (the walkthrough and troubleshooting pages included as they land). */
function docFiles(): string[] {
  const docs = readdirSync(path.join(ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => path.join('docs', name));
  return ['README.md', ...docs];
}

const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** The text outside fenced code blocks, and the fenced blocks with their info string. */
function split(markdown: string): { prose: string; blocks: { info: string; code: string }[] } {
  const blocks: { info: string; code: string }[] = [];
  const prose = markdown.replace(/^```([^\n]*)\n([\s\S]*?)^```\s*$/gm, (_all, info: string, code: string) => {
    blocks.push({ info: info.trim(), code });
    return '';
  });
  return { prose, blocks };
}

/** Top-level folders and files of the repository: a backticked name starting with one of them is a path. */
const TOP_LEVEL = new Set(
  readdirSync(ROOT).filter((name) => !['node_modules', '.git', 'data'].includes(name)),
);
/** Made by the build or by a run, not kept in git: named in the docs, absent from a clean clone. */
const GENERATED = [/^\.bench\//, /\/dist\//, /^data\//];

/** Backticked repo paths such as `common/src/subscriber.ts`, `infra/k8s/`, `*\/src/routes.ts`. */
function namedPaths(prose: string): string[] {
  const paths = new Set<string>();
  for (const [, token] of prose.matchAll(/`([^`\s]+)`/g)) {
    if (!token || token.includes('<') || token.includes('://') || token.startsWith('/')) continue;
    const candidate = token.replace(/^\.\//, '');
    const first = candidate.split('/')[0]!;
    if (!candidate.includes('/') && !/\.(md|json|ya?ml|ts|js|mjs)$/.test(candidate)) continue;
    if (first !== '*' && !TOP_LEVEL.has(first) && !/^[\w.-]+\.(md|json|ya?ml)$/.test(candidate)) continue;
    if (GENERATED.some((pattern) => pattern.test(candidate))) continue;
    paths.add(candidate);
  }
  return [...paths];
}

/** Whether a path exists; a leading `*` stands for any top-level folder (`*\/src/routes.ts`). */
function pathExists(candidate: string): boolean {
  if (candidate.startsWith('*/')) {
    const rest = candidate.slice(2);
    return [...TOP_LEVEL].some((folder) => existsSync(path.join(ROOT, folder, rest)));
  }
  return existsSync(path.join(ROOT, candidate));
}

/** Relative links of [text](target): to a file of the repo, from the page's own folder. */
function linkedPaths(file: string, prose: string): string[] {
  const targets: string[] = [];
  for (const [, target] of prose.matchAll(/\]\(([^)\s]+)\)/g)) {
    if (!target || /^[a-z]+:/i.test(target) || target.startsWith('#')) continue;
    targets.push(path.join(path.dirname(file), target.split('#')[0]!));
  }
  return targets;
}

const scripts = Object.keys(
  (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts,
);

describe.each(docFiles())('%s', (file) => {
  const { prose, blocks } = split(read(file));
  const everything = read(file);

  it('names only repo paths that exist', () => {
    const missing = namedPaths(prose).filter((candidate) => !pathExists(candidate));
    expect(missing, `paths named in ${file} that do not exist`).toEqual([]);
  });

  it('links only to files that exist', () => {
    const missing = linkedPaths(file, prose).filter((target) => !existsSync(path.join(ROOT, target)));
    expect(missing, `links in ${file} to nothing`).toEqual([]);
  });

  it('names only npm scripts that exist', () => {
    const named = [...everything.matchAll(/npm run ([a-z][\w:-]*)/g)].map((match) => match[1]!);
    const unknown = [...new Set(named)].filter((name) => !scripts.includes(name));
    expect(unknown, `npm scripts named in ${file} that package.json lacks`).toEqual([]);
  });

  // A shell block whose info string says `runnable` (```sh runnable) is run from the repo root after the
  // build, and must succeed: the docs show it working, so it must work.
  const runnable = blocks.filter((block) => /^(sh|bash|shell)\b.*\brunnable\b/.test(block.info));
  if (runnable.length > 0) {
    it(`runs its ${runnable.length} runnable shell block(s) successfully`, { timeout: 120_000 }, async () => {
      for (const block of runnable) {
        const result = await run('bash', ['-euo', 'pipefail', '-c', block.code], {
          cwd: ROOT,
          timeout: 100_000,
        }).catch((err: Error & { stdout?: string; stderr?: string }) => {
          throw new Error(`${file}: this block failed:\n${block.code}\n${err.stderr ?? err.message}`);
        });
        expect(result).toBeDefined();
      }
    });
  }
});

describe('the docs checks themselves', () => {
  it('see a path that does not exist, a dead link and an unknown npm script', () => {
    const prose = 'See `common/src/nothing-here.ts`, [this](docs/nowhere.md) and `npm run nonesuch`.';
    expect(namedPaths(prose).filter((candidate) => !pathExists(candidate))).toEqual([
      'common/src/nothing-here.ts',
    ]);
    expect(linkedPaths('README.md', prose).filter((t) => !existsSync(path.join(ROOT, t)))).toEqual([
      'docs/nowhere.md',
    ]);
    expect(scripts).not.toContain('nonesuch');
  });

  it('take routes, URLs and placeholders for what they are, not for paths', () => {
    expect(namedPaths('`/posts/create` `http://posts.com/x` `<service>/Dockerfile` `GET /events`')).toEqual(
      [],
    );
    expect(namedPaths('`*/src/routes.ts` `docs/event-bus.md` `package.json`')).toEqual([
      '*/src/routes.ts',
      'docs/event-bus.md',
      'package.json',
    ]);
  });
});
