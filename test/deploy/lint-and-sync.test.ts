/**
 * Two checks that read files only: every Dockerfile lints clean (npm dockerfile-utils, the
 * linter of the VS Code Docker extension), and every `sync.manual` pattern of skaffold.yaml matches real
 * files (a pattern that matches nothing syncs nothing, and `skaffold dev` silently rebuilds instead).
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { validate } from 'dockerfile-utils';
import { describe, expect, it } from 'vitest';
import { loadStack, ROOT, type Data } from './support/files.js';

/** Every Dockerfile of the repository: one per image folder. */
const dockerfiles = readdirSync(ROOT, { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && !['node_modules', '.git'].includes(entry.name))
  .map((entry) => path.join(entry.name, 'Dockerfile'))
  .filter((file) => {
    try {
      return readFileSync(path.join(ROOT, file)).length > 0;
    } catch {
      return false;
    }
  });

/** dockerfile-utils' findings, one line each (`file:line: message`). */
function lint(file: string, text: string): string[] {
  return validate(text).map((d) => `${file}:${d.range.start.line + 1}: ${d.message}`);
}

/** A skaffold sync glob (`posts/src/**\/*.ts`) as a regular expression over repo-relative paths. */
export function globToRegExp(glob: string): RegExp {
  let pattern = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (glob.startsWith('**/', i)) {
      pattern += '(?:.*/)?';
      i += 2;
    } else if (char === '*') pattern += '[^/]*';
    else if (char === '?') pattern += '[^/]';
    else pattern += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${pattern}$`);
}

/** The repository's files under the glob's fixed leading folders (no node_modules, no build output). */
function filesFor(glob: string): string[] {
  const fixed = glob
    .split('/')
    .filter((part, index, parts) => index < parts.length - 1 && !/[*?]/.test(part));
  const start = fixed.slice(
    0,
    fixed.findIndex((_part, i) => /[*?]/.test(glob.split('/')[i]!)) + 1 || fixed.length,
  );
  const found: string[] = [];
  const walk = (dir: string) => {
    let entries;
    try {
      entries = readdirSync(path.join(ROOT, dir), { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      if (['node_modules', 'dist', '.git'].includes(entry.name)) continue;
      const relative = dir ? `${dir}/${entry.name}` : entry.name;
      if (entry.isDirectory()) walk(relative);
      else found.push(relative);
    }
  };
  walk(start.join('/'));
  return found;
}

const matches = (glob: string) => filesFor(glob).filter((file) => globToRegExp(glob).test(file));

/** Every sync rule of skaffold.yaml, its profiles included. */
function syncRules(skaffold: Data): { image: string; src: string }[] {
  const artifacts: Data[] = [
    ...(skaffold.build?.artifacts ?? []),
    ...(skaffold.profiles ?? []).flatMap((profile: Data) => profile.build?.artifacts ?? []),
  ];
  return artifacts.flatMap((artifact) =>
    (artifact.sync?.manual ?? []).map((rule: Data) => ({ image: artifact.image, src: String(rule.src) })),
  );
}

describe('Dockerfiles lint clean (dockerfile-utils)', () => {
  it('finds every Dockerfile of the repository', () => {
    expect(dockerfiles.length).toBeGreaterThanOrEqual(7);
  });

  it.each(dockerfiles)('%s', (file) => {
    expect(lint(file, readFileSync(path.join(ROOT, file), 'utf8'))).toEqual([]);
  });

  it('reports a broken Dockerfile', () => {
    const findings = lint('broken/Dockerfile', 'FROM\nEXPOSE port-four-thousand\nCMD\n');
    expect(findings.length).toBeGreaterThanOrEqual(2);
    expect(findings.join('\n')).toContain('broken/Dockerfile:2');
  });
});

describe("skaffold.yaml's sync patterns match real files", () => {
  const rules = syncRules(loadStack().skaffold);

  it('has sync rules for the dev images', () => {
    expect(rules.length).toBeGreaterThanOrEqual(6);
  });

  it.each(rules.map((rule) => [rule.image, rule.src]))('%s: %s', (_image, src) => {
    expect(matches(src), `no file matches ${src}`).not.toEqual([]);
  });

  it('sees a pattern that matches nothing, and matches as skaffold does', () => {
    expect(matches('posts/srcx/**/*.ts')).toEqual([]);
    expect(globToRegExp('posts/src/**/*.ts').test('posts/src/index.ts')).toBe(true);
    expect(globToRegExp('posts/src/**/*.ts').test('posts/src/a/b/routes.ts')).toBe(true);
    expect(globToRegExp('posts/src/**/*.ts').test('posts/srcx/index.ts')).toBe(false);
    expect(globToRegExp('client/src/*.tsx').test('client/src/components/App.tsx')).toBe(false);
  });
});
