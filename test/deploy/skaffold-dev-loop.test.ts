/**
 * What a save does under `skaffold dev`, decided as skaffold decides it (support/skaffold-dev-loop.ts) from
 * the real skaffold.yaml, Dockerfiles and ignore files: a save in a service's sources is synced into that
 * service's container alone, a save in common/src into the five backend services (never the client), and a
 * save in the docs, the README or a test does nothing. No image is rebuilt for any of them.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadStack, ROOT } from './support/files.js';
import {
  artifactDependencies,
  copySources,
  decide,
  describeDecision,
  ignoreFile,
  skaffoldArtifacts,
  type Artifact,
} from './support/skaffold-dev-loop.js';

const BACKEND = ['posts', 'comments', 'query', 'moderation', 'event-bus'];
const artifacts = skaffoldArtifacts(loadStack().skaffold);
const dependencies = new Map(artifacts.map((a) => [a.image, artifactDependencies(ROOT, a)]));

/** What a save of `file` does to every image: `{ 'blog/posts': 'nothing', ... }`. */
function onSave(file: string): Record<string, string> {
  return Object.fromEntries(
    artifacts.map((a) => [a.image, describeDecision(decide(a, dependencies.get(a.image)!, file))]),
  );
}

/** Every image `nothing`, but those given. */
function expected(changes: Record<string, string>): Record<string, string> {
  return Object.fromEntries(artifacts.map((a) => [a.image, changes[a.image] ?? 'nothing']));
}

describe('skaffold dev: what a saved file does', () => {
  it('builds the six dev images', () => {
    expect(artifacts.map((a) => a.image).sort()).toEqual(
      [...BACKEND, 'client'].map((name) => `blog/${name}`).sort(),
    );
    expect(new Set(artifacts.map((a) => a.target))).toEqual(new Set(['dev']));
  });

  it.each(BACKEND)('a save in %s/src is synced into that service alone', (service) => {
    const file = `${service}/src/index.ts`;
    expect(onSave(file)).toEqual(expected({ [`blog/${service}`]: `sync /tmp/app/${file}` }));
  });

  it('a save in client/src is synced into the client alone', () => {
    for (const file of ['client/src/App.tsx', 'client/src/posts.ts']) {
      expect(onSave(file)).toEqual(expected({ 'blog/client': `sync /tmp/app/${file}` }));
    }
  });

  it('a save in common/src is synced into the five backend services, and leaves the client alone', () => {
    const file = 'common/src/config.ts';
    expect(onSave(file)).toEqual(
      expected(Object.fromEntries(BACKEND.map((s) => [`blog/${s}`, `sync /tmp/app/${file}`]))),
    );
  });

  it.each([
    'README.md',
    'docs/deploy.md',
    'posts/src/projection.test.ts',
    'common/src/config.test.ts',
    'client/src/App.test.tsx',
    'test/e2e.test.ts',
    'infra/k8s/posts-depl.yaml',
    'skaffold.yaml',
  ])('a save of %s does nothing', (file) => {
    expect(onSave(file)).toEqual(expected({}));
  });

  it('a change of a package manifest rebuilds every image, and a Dockerfile its own image', () => {
    const everyone = Object.fromEntries(artifacts.map((a) => [a.image, 'rebuild']));
    expect(onSave('package-lock.json')).toEqual(everyone);
    expect(onSave('posts/package.json')).toEqual(everyone);
    expect(onSave('query/Dockerfile')).toEqual(expected({ 'blog/query': 'rebuild' }));
  });
});

describe('the decision, as skaffold makes it', () => {
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'blog-skaffold-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));
  const write = (file: string, text = '') => {
    mkdirSync(path.dirname(path.join(tmp, file)), { recursive: true });
    writeFileSync(path.join(tmp, file), text);
  };
  const artifact = (dockerfile: string, sync: Artifact['sync'] = []): Artifact => ({
    image: 'x',
    context: '.',
    dockerfile,
    sync,
  });

  it('takes COPY and ADD sources of every stage, but not those of COPY --from', () => {
    const text = [
      'FROM node AS base',
      'COPY package.json package-lock.json ./',
      'FROM base AS build',
      'COPY --chown=node:node src/ src/',
      'COPY --from=base /app ./',
      'ADD a.tar.gz https://example.com/x ./',
      'COPY ["server.mjs", "index.html", "./"]',
    ].join('\n');
    expect(copySources(text)).toEqual([
      ['package.json', 'package-lock.json'],
      ['src/'],
      ['a.tar.gz'],
      ['server.mjs', 'index.html'],
    ]);
  });

  it('sees that a Dockerfile copying the whole context makes a save in query/src rebuild posts', () => {
    const posts = artifacts.find((a) => a.image === 'blog/posts')!;
    const wholeContext = 'FROM node AS manifests\nCOPY . .\nFROM node AS build\nCOPY posts/ posts/\n';
    const deps = artifactDependencies(ROOT, posts, wholeContext);
    expect(describeDecision(decide(posts, deps, 'query/src/index.ts'))).toBe('rebuild');
    expect(describeDecision(decide(posts, deps, 'posts/src/index.ts'))).toBe(
      'sync /tmp/app/posts/src/index.ts',
    );
  });

  it('reads <Dockerfile>.dockerignore before the context’s .dockerignore', () => {
    write('svc/Dockerfile', 'FROM node\nCOPY . .\n');
    write('.dockerignore', 'docs\n');
    write('docs/a.md');
    write('notes.txt');
    expect(ignoreFile(tmp, 'svc/Dockerfile')).toBe('.dockerignore');
    expect([...artifactDependencies(tmp, artifact('svc/Dockerfile'))].sort()).toEqual([
      'notes.txt',
      'svc/Dockerfile',
    ]);
    write('svc/Dockerfile.dockerignore', '*.txt\n');
    expect(ignoreFile(tmp, 'svc/Dockerfile')).toBe('svc/Dockerfile.dockerignore');
    expect([...artifactDependencies(tmp, artifact('svc/Dockerfile'))].sort()).toEqual([
      'docs/a.md',
      'svc/Dockerfile',
      'svc/Dockerfile.dockerignore',
    ]);
  });

  it('expands globs as Go does, and refuses a COPY that matches nothing', () => {
    write('g/Dockerfile', 'FROM node\nCOPY g/*.json ./\n');
    write('g/a.json');
    write('g/sub/b.json');
    expect([...artifactDependencies(tmp, artifact('g/Dockerfile'))].sort()).toEqual([
      'g/Dockerfile',
      'g/a.json',
    ]);
    write('h/Dockerfile', 'FROM node\nCOPY h/missing.json h/*.yaml ./\n');
    expect(() => artifactDependencies(tmp, artifact('h/Dockerfile'))).toThrow(/must match at least one file/);
  });

  it('syncs to <dest>/<path> less the rule’s strip prefix, and rebuilds for any other dependency', () => {
    const rules = [{ src: 'web/src/**/*.ts', dest: '/srv', strip: 'web/' }];
    const deps = new Set(['web/src/a/b.ts', 'web/index.html']);
    expect(describeDecision(decide(artifact('D', rules), deps, 'web/src/a/b.ts'))).toBe(
      'sync /srv/src/a/b.ts',
    );
    expect(describeDecision(decide(artifact('D', rules), deps, 'web/index.html'))).toBe('rebuild');
    expect(describeDecision(decide(artifact('D', rules), deps, 'web/other.ts'))).toBe('nothing');
  });
});
