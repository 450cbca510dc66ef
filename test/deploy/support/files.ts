/**
 * Reads what the deployment tests check: the Kubernetes manifests, skaffold.yaml, docker-compose.yml and the
 * Dockerfiles, as plain data (no model of them here: each checker says what it expects).
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const ROOT = path.resolve(fileURLToPath(new URL('../../..', import.meta.url)));

/** Where manifests live: what skaffold applies, the network policies, and the lectures' teaching files. */
export const MANIFEST_DIRS = ['infra/k8s', 'infra/network-policies', 'infra/lessons'] as const;

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

export interface Stack {
  /** infra/k8s only: what skaffold and `kubectl apply -f infra/k8s` apply. */
  k8s: K8sObject[];
  netpol: K8sObject[];
  lessons: K8sObject[];
  skaffold: Data;
  compose: Data;
  dockerfiles: Record<string, string>;
  dockerignore: string;
  workspaces: string[];
}

/** Every service with a Dockerfile: the workspaces, and the client (a workspace once its branch lands). */
export function imageServices(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
  const names = pkg.workspaces.filter((w) => w !== 'common');
  if (!names.includes('client')) names.push('client');
  return names;
}

export function loadStack(): Stack {
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { workspaces: string[] };
  const dockerfiles: Record<string, string> = {};
  for (const name of imageServices()) {
    const file = path.join(ROOT, name, 'Dockerfile');
    if (existsSync(file)) dockerfiles[name] = readFileSync(file, 'utf8');
  }
  return {
    k8s: loadObjects(['infra/k8s']),
    netpol: loadObjects(['infra/network-policies']),
    lessons: loadObjects(['infra/lessons']),
    skaffold: readYaml('skaffold.yaml'),
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
