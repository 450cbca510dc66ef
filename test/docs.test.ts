import { execFile } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { readYamlDocuments, type Data } from './deploy/support/files.js';
import { validateObjects } from './deploy/support/k8s-schema.js';

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
const GENERATED = [/^\.bench\//, /\/dist(\/|$)/, /^data\//];
/** Files the docs name that are outside the repository on purpose: the official JSON schemas the deploy
 * tests read from the folder `BLOG_SCHEMAS_DIR` names (never committed). */
const OUTSIDE_REPO = new Set(['compose-spec.json']);

/** Every file and folder of the repository (relative, `/`-separated), without dependencies and data. */
const REPO_PATHS: string[] = (() => {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      if (['node_modules', '.git', 'data', 'dist'].includes(entry.name)) continue;
      const relative = dir ? `${dir}/${entry.name}` : entry.name;
      found.push(relative);
      if (entry.isDirectory()) walk(relative);
    }
  };
  walk('');
  return found;
})();

/** A glob of the docs (`infra/k8s/*`, `common/src/**\/*.ts`, `*\/src/routes.ts`) as an anchored regex. */
function globToRegex(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (glob.startsWith('**/', i)) {
      source += '(?:.*/)?';
      i += 2;
    } else if (glob.startsWith('**', i)) {
      source += '.*';
      i += 1;
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

const isGlob = (candidate: string) => /[*?]/.test(candidate);

/** The repository paths a glob matches (a path without wildcards matches itself, if it exists). */
function expandGlob(candidate: string): string[] {
  const clean = candidate.replace(/\/+$/, '');
  if (!isGlob(clean)) return existsSync(path.join(ROOT, clean)) ? [clean] : [];
  const pattern = globToRegex(clean);
  return REPO_PATHS.filter((relative) => pattern.test(relative));
}

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

/**
 * Whether a path exists. Wildcards are globs over the repository (`infra/k8s/*`, `*\/src/routes.ts`: any
 * top-level folder) and must match something; a bare file name (`ingress-srv.yaml`) may be anywhere in it.
 */
function pathExists(candidate: string): boolean {
  if (isGlob(candidate)) return expandGlob(candidate).length > 0;
  if (!candidate.includes('/') && !existsSync(path.join(ROOT, candidate))) {
    return (
      OUTSIDE_REPO.has(candidate) ||
      REPO_PATHS.some((relative) => path.posix.basename(relative) === candidate)
    );
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

/**
 * The Kubernetes manifests a page sends learners to: every `-f <path>` of a kubectl command (prose and
 * code blocks, URLs and `<placeholders>` left out, a folder taken as kubectl takes it) and every path
 * under `infra/` written on the page: a .yaml/.yml file, a glob, or a folder (every manifest under it).
 */
function manifestReferences(markdown: string): string[] {
  const refs = new Set<string>();
  for (const [line] of markdown.matchAll(/kubectl[^\n]*/g)) {
    if (!/\b(apply|delete|create|replace|diff)\b/.test(line)) continue;
    for (const [, target] of line.matchAll(/(?:^|\s)(?:-f|--filename)[ =]([^\s`'"]+)/g)) {
      if (target && !target.includes('://') && !target.includes('<')) refs.add(target.replace(/^\.\//, ''));
    }
  }
  for (const [, target] of markdown.matchAll(/(?<![\w/.-])((?:\.\/)?infra\/[\w./*-]*)/g)) {
    const clean = target!.replace(/^\.\//, '').replace(/[.]+$/, '');
    if (/\.ya?ml$/.test(clean) || isGlob(clean)) refs.add(clean);
    // A folder named in prose stands for every manifest under it (`infra/`, `infra/lessons/`).
    else if (!/\.\w+$/.test(clean)) {
      const isDir = existsSync(path.join(ROOT, clean)) && statSync(path.join(ROOT, clean)).isDirectory();
      refs.add(isDir ? `${clean.replace(/\/+$/, '')}/**/*.yaml` : clean);
    }
  }
  return [...refs];
}

/** The manifest files a reference stands for: a file, a folder's .yaml files (as `kubectl apply -f
 * <folder>` takes them, not recursively), or a glob's. */
function manifestFilesOf(ref: string): string[] {
  return expandGlob(ref).flatMap((relative) => {
    const full = path.join(ROOT, relative);
    if (!statSync(full).isDirectory()) return [relative];
    return readdirSync(full)
      .filter((name) => /\.ya?ml$/.test(name))
      .map((name) => `${relative.replace(/\/+$/, '')}/${name}`);
  });
}

/**
 * Every problem of the manifests named: a reference to nothing, a file that is no manifest, and every
 * schema error or unknown field (the deploy tests' own checks, `test/deploy/support/k8s-schema.ts`).
 */
function manifestProblems(refs: string[], load: (file: string) => Data[] = readYamlDocuments): string[] {
  return refs.flatMap((ref) => {
    const files = manifestFilesOf(ref).filter((file) => /\.ya?ml$/.test(file));
    if (files.length === 0) return [`${ref}: no manifest there`];
    return files.flatMap((file) => {
      const objects = load(file).filter((object) => object?.kind);
      if (objects.length === 0) return [`${file}: no Kubernetes object in it`];
      return validateObjects(objects.map((object) => ({ file, object })));
    });
  });
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

  it('names only valid Kubernetes manifests (kubectl -f paths, files under infra/)', () => {
    const refs = manifestReferences(everything).filter((ref) => !/(^|\/)skaffold\.yaml$/.test(ref));
    expect(manifestProblems(refs), `manifests named in ${file}`).toEqual([]);
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

describe('the README, the front door', () => {
  it('links every page of docs/', () => {
    const linked = new Set(linkedPaths('README.md', split(read('README.md')).prose));
    const pages = docFiles().filter((file) => file !== 'README.md');
    expect(pages.filter((page) => !linked.has(page))).toEqual([]);
  });
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

  it('see a glob or a bare file name that matches nothing', () => {
    expect(pathExists('infra/k8s/*.yaml')).toBe(true);
    expect(pathExists('common/src/**/*.ts')).toBe(true);
    expect(pathExists('ingress-srv.yaml')).toBe(true);
    expect(pathExists('infra/k8s/*.json')).toBe(false);
    expect(pathExists('common/src/**/*.tsx')).toBe(false);
    expect(pathExists('nowhere-srv.yaml')).toBe(false);
  });

  it('find the manifests a page names, and report a missing or a broken one', () => {
    const page = [
      'kubectl apply -f infra/lessons/posts.yaml && kubectl get pods',
      'then `kubectl apply -f infra/k8s` and `kubectl delete -f ./infra/k8s/nothing-depl.yaml`,',
      'not `kubectl apply -f https://example.com/deploy.yaml` nor `kubectl apply -f <config file>`;',
      'see `infra/k8s/ingress-srv.yaml` and `infra/nats/`.',
    ].join('\n');
    const refs = manifestReferences(page);
    expect(refs.sort()).toEqual(
      [
        'infra/k8s',
        'infra/k8s/**/*.yaml',
        'infra/k8s/ingress-srv.yaml',
        'infra/k8s/nothing-depl.yaml',
        'infra/lessons/posts.yaml',
        'infra/nats/**/*.yaml',
      ].sort(),
    );
    expect(manifestFilesOf('infra/k8s')).toContain('infra/k8s/posts-srv.yaml');
    expect(manifestProblems(refs)).toEqual(['infra/k8s/nothing-depl.yaml: no manifest there']);

    // The same Ingress with a v1beta1-style backend, as the videos write it: the deploy tests' checker
    // reports the unknown field.
    const broken = (file: string): Data[] =>
      readYamlDocuments(file).map((object) => {
        if (object?.kind !== 'Ingress') return object;
        const copy = structuredClone(object);
        copy.spec.rules[0].http.paths[0].backend = { serviceName: 'posts-clusterip-srv', servicePort: 4000 };
        return copy;
      });
    const problems = manifestProblems(['infra/k8s/ingress-srv.yaml'], broken);
    expect(problems.some((p) => p.includes('backend/serviceName: unknown field'))).toBe(true);
    expect(manifestProblems(['README.md'])).toEqual(['README.md: no manifest there']);
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
