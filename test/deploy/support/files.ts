/**
 * Reads what the deployment tests check: the Kubernetes manifests, skaffold.yaml, docker-compose.yml and the
 * Dockerfiles, as plain data (no model of them here: each checker says what it expects).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { applyJsonPatch, kustomize } from './kustomize.js';

export const ROOT = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/**
 * Where manifests live: what skaffold applies (infra/nats with the `nats` profile only; both hold network
 * policies), and the lectures' teaching files.
 */
export const MANIFEST_DIRS = ['infra/k8s', 'infra/nats', 'infra/lessons'] as const;

// Loose JSON-like data, read from YAML: each check narrows what it uses.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Data = any;

export interface K8sObject {
  /** Relative to the repository root, e.g. `infra/k8s/posts-depl.yaml`. */
  file: string;
  object: Data;
}

/** Every document of a YAML file (a YAML syntax error throws, naming the file). */
export function readYamlDocuments(file: string): Data[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const documents = parseAllDocuments(text);
  if (!Array.isArray(documents)) return [];
  const values: Data[] = [];
  for (const document of documents) {
    if (document.errors.length > 0) {
      throw new Error(`${file}: ${document.errors.map((e) => e.message).join('; ')}`);
    }
    const value: Data = document.toJS();
    if (value !== null && value !== undefined) values.push(value);
  }
  return values;
}

export function readYaml(file: string): Data {
  const [first] = readYamlDocuments(file);
  return first;
}

export function manifestFiles(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir))
    .filter((name) => name.endsWith('.yaml') || name.endsWith('.yml'))
    .sort()
    .map((name) => `${dir}/${name}`);
}

export function loadObjects(dirs: readonly string[] = MANIFEST_DIRS): K8sObject[] {
  return dirs.flatMap((dir) =>
    manifestFiles(dir).flatMap((file) => readYamlDocuments(file).map((object) => ({ file, object }))),
  );
}

/** A skaffold `rawYaml` glob (`./infra/k8s/*-depl.yaml`) as a regular expression over repo-relative paths. */
function rawYamlRegExp(glob: string): RegExp {
  const source = glob
    .replace(/^\.\//, '')
    .split('')
    .map((char) =>
      char === '*' ? '[^/]*' : char === '?' ? '[^/]' : char.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
    )
    .join('');
  return new RegExp(`^${source}$`);
}

/**
 * The files a list of skaffold `rawYaml` globs applies, in skaffold's order: pattern by pattern, each
 * pattern's matches sorted, a file matched twice applied once. A pattern that matches nothing is returned
 * as itself, so the checks report it (skaffold only warns "did not match any file" and applies the rest).
 * Wildcards in the last part of the path only, as this project writes them.
 */
export function rawYamlFiles(patterns: readonly string[]): string[] {
  const files: string[] = [];
  for (const pattern of patterns) {
    const clean = pattern.replace(/^\.\//, '');
    const dir = clean.slice(0, Math.max(clean.lastIndexOf('/'), 0));
    let names: string[] = [];
    try {
      names = readdirSync(path.join(ROOT, dir)).sort();
    } catch {
      // A folder that does not exist matches nothing.
    }
    const matched = names.map((name) => `${dir}/${name}`).filter((file) => rawYamlRegExp(pattern).test(file));
    if (matched.length === 0) files.push(clean);
    for (const file of matched) if (!files.includes(file)) files.push(file);
  }
  return files;
}

/**
 * The `manifests` section a profile deploys, as skaffold makes it: the profile's fields laid over the
 * top-level ones one by one (a list or a renderer the profile sets replaces the top-level one, the others
 * stay), then the profile's `patches` that touch it (JSON patches on the whole config; `replace` when no
 * `op` is given).
 */
export function profileManifests(skaffold: Data, profile: string): Data {
  const found = (skaffold?.profiles ?? []).find((p: Data) => p.name === profile);
  const config: Data = { manifests: structuredClone(skaffold?.manifests ?? {}) };
  for (const [key, value] of Object.entries<Data>(found?.manifests ?? {})) {
    if (!(Array.isArray(value) && value.length === 0)) config.manifests[key] = structuredClone(value);
  }
  const patches = (found?.patches ?? []).filter((p: Data) => String(p.path).startsWith('/manifests'));
  applyJsonPatch(
    `skaffold profile ${profile} patches`,
    config,
    patches.map((p: Data) => ({ ...p, op: p.op ?? 'replace' })),
  );
  return config.manifests;
}

/**
 * The objects a skaffold profile applies (its `manifests` as profileManifests makes them), in order:
 * the `rawYaml` files, then what each `kustomize` path renders (kustomize.ts).
 */
export function profileObjects(skaffold: Data, profile: string): K8sObject[] {
  const manifests = profileManifests(skaffold, profile);
  const raw = rawYamlFiles(manifests.rawYaml ?? []).flatMap((file) =>
    existsSync(path.join(ROOT, file)) ? readYamlDocuments(file).map((object) => ({ file, object })) : [],
  );
  const rendered = (manifests.kustomize?.paths ?? []).flatMap((dir: string) =>
    kustomize(dir, readYamlDocuments),
  );
  return [...raw, ...rendered];
}

/**
 * The variables of the NATS transport as docs/event-bus.md's table lists them (`| \`NAME\` | where |
 * default |`), with the default's first backticked value: the names the code is built to read.
 */
export function documentedTransportVariables(): Record<string, string> {
  const text = readFileSync(path.join(ROOT, 'docs/event-bus.md'), 'utf8');
  const section = text.slice(text.indexOf('## The NATS JetStream transport'));
  const variables: Record<string, string> = {};
  for (const [, name, rest] of section.matchAll(/^\| `([A-Z][A-Z0-9_]*)` +\|([^\n]*)\|\s*$/gm)) {
    const cells = rest!.split('|');
    variables[name!] = /`([^`]+)`/.exec(cells.at(-1) ?? '')?.[1] ?? '';
  }
  return variables;
}

/**
 * The variables docs/event-bus.md's design for scaling out names (`NATS_REPLICAS`), which the manifests may
 * set beside the table's: the names only.
 */
export function designedTransportVariables(): Record<string, string> {
  const text = readFileSync(path.join(ROOT, 'docs/event-bus.md'), 'utf8');
  const section = text.slice(text.indexOf('## Scaling out on NATS'));
  return Object.fromEntries([...section.matchAll(/`(NATS_[A-Z0-9_]+)`/g)].map(([, name]) => [name!, '']));
}

/** The TypeScript sources of the services, common/, router/ and scripts/ (no tests, no build output). */
export function codeSources(): { file: string; text: string }[] {
  const sources: { file: string; text: string }[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(path.join(ROOT, dir), { withFileTypes: true })) {
      if (['node_modules', 'dist', '.git'].includes(entry.name)) continue;
      const relative = `${dir}/${entry.name}`;
      if (entry.isDirectory()) walk(relative);
      else if (/\.tsx?$/.test(entry.name) && !/\.test\.tsx?$/.test(entry.name))
        sources.push({ file: relative, text: readFileSync(path.join(ROOT, relative), 'utf8') });
    }
  };
  for (const dir of [
    'common',
    'posts',
    'comments',
    'query',
    'moderation',
    'event-bus',
    'router',
    'scripts',
  ]) {
    if (existsSync(path.join(ROOT, dir, 'src'))) walk(`${dir}/src`);
  }
  return sources;
}

export interface Stack {
  /** infra/k8s only: what skaffold and `kubectl apply -f infra/k8s` apply. */
  k8s: K8sObject[];
  /** infra/nats only: what the `nats` profile adds. */
  nats: K8sObject[];
  /** What `skaffold dev -p nats` applies, in its order. */
  natsProfile: K8sObject[];
  /** infra/kustomization.yaml, which the `nats` profile renders. */
  kustomization: Data;
  lessons: K8sObject[];
  skaffold: Data;
  compose: Data;
  dockerfiles: Record<string, string>;
  dockerignore: string;
  workspaces: string[];
}

/**
 * Every service of the course with a Dockerfile: the workspaces but common (code the services share), the
 * local router (docker-compose's stand-in for ingress-nginx, checked on its own) and scripts (never shipped).
 */
export function imageServices(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
  return pkg.workspaces.filter((w) => !['common', 'router', 'scripts'].includes(w));
}

export function loadStack(): Stack {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
  const dockerfiles: Record<string, string> = {};
  for (const name of imageServices()) {
    const file = path.join(ROOT, name, 'Dockerfile');
    if (existsSync(file)) dockerfiles[name] = readFileSync(file, 'utf8');
  }
  const skaffold = readYaml('skaffold.yaml');
  return {
    k8s: loadObjects(['infra/k8s']),
    nats: loadObjects(['infra/nats']),
    natsProfile: profileObjects(skaffold, 'nats'),
    kustomization: readYaml('infra/kustomization.yaml'),
    lessons: loadObjects(['infra/lessons']),
    skaffold,
    compose: readYaml('docker-compose.yml'),
    dockerfiles,
    dockerignore: readFileSync(path.join(ROOT, '.dockerignore'), 'utf8'),
    workspaces: pkg.workspaces,
  };
}

/** A deep copy to break on purpose in the negative tests. */
export function clone<T>(value: T): T {
  return structuredClone(value);
}
