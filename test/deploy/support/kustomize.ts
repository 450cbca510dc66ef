/**
 * What `kubectl kustomize <dir>` (and skaffold's `manifests.kustomize`) renders from a kustomization of this
 * repository, without kubectl: the resources' objects, the patches applied, sorted as kustomize sorts.
 * Only what the project uses is rendered, each part as kustomize defines it:
 *
 * - `resources`: files (not folders or URLs), below the kustomization's folder (kustomize refuses others);
 * - `patches` with an inline `patch` and a `target` by `kind` and `name` (a regular expression matching the
 *   whole name): a JSON 6902 patch (a list of `add`, `remove`, `replace` and `test` operations), or a
 *   strategic merge patch that is `$patch: delete` alone, which deletes the targets.
 *
 * Anything else throws, naming the field, so the checks never pass on a rendering that differs from the
 * cluster's.
 */
import path from 'node:path';
import { parse } from 'yaml';
import type { Data, K8sObject } from './files.js';

/** kustomize's default ("legacy") order: these kinds first, in this order, then others, then the last. */
const ORDER_FIRST = [
  'Namespace',
  'ResourceQuota',
  'StorageClass',
  'CustomResourceDefinition',
  'ServiceAccount',
  'PodSecurityPolicy',
  'Role',
  'ClusterRole',
  'RoleBinding',
  'ClusterRoleBinding',
  'ConfigMap',
  'Secret',
  'Endpoints',
  'Service',
  'LimitRange',
  'PriorityClass',
  'PersistentVolume',
  'PersistentVolumeClaim',
  'Deployment',
  'StatefulSet',
  'CronJob',
  'PodDisruptionBudget',
];
const ORDER_LAST = ['MutatingWebhookConfiguration', 'ValidatingWebhookConfiguration'];

/** An object's group, version and kind as kustomize writes them (`networking.k8s.io_v1_Ingress`). */
function gvk(object: Data): string {
  const [group, version] = String(object?.apiVersion ?? '').includes('/')
    ? String(object.apiVersion).split('/')
    : ['', object?.apiVersion];
  return `${group}_${version}_${object?.kind}`;
}

function rank(kind: string): number {
  if (ORDER_FIRST.includes(kind)) return ORDER_FIRST.indexOf(kind);
  if (ORDER_LAST.includes(kind)) return 1000 + ORDER_LAST.indexOf(kind);
  return ORDER_FIRST.length;
}

/** kustomize's legacy sort: by kind's rank, then group/version/kind, then namespace and name. */
export function legacySort(objects: K8sObject[]): K8sObject[] {
  const key = ({ object }: K8sObject) =>
    [gvk(object), object?.metadata?.namespace ?? '', object?.metadata?.name ?? ''] as const;
  return [...objects].sort((a, b) => {
    const byRank = rank(a.object?.kind) - rank(b.object?.kind);
    if (byRank !== 0) return byRank;
    const [ka, kb] = [key(a), key(b)];
    for (let i = 0; i < ka.length; i++) {
      if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
    }
    return 0;
  });
}

/** A JSON pointer's tokens (`/spec/template/spec/volumes/1` → spec, template, spec, volumes, 1). */
function pointer(where: string, at: string): string[] {
  if (!at.startsWith('/')) throw new Error(`${where}: path ${at} is not a JSON pointer`);
  return at
    .slice(1)
    .split('/')
    .map((token) => token.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** The parent of the pointer's target and the target's key (an index for an array, `-` to append). */
function locate(where: string, document: Data, tokens: string[]): { parent: Data; key: string } {
  let parent = document;
  for (const token of tokens.slice(0, -1)) {
    if (parent === null || typeof parent !== 'object' || !(token in parent))
      throw new Error(`${where}: /${tokens.join('/')} does not exist`);
    parent = parent[token];
  }
  if (parent === null || typeof parent !== 'object')
    throw new Error(`${where}: /${tokens.join('/')} does not exist`);
  return { parent, key: tokens.at(-1)! };
}

/** RFC 6902's add, remove, replace and test on `document` (changed in place). */
export function applyJsonPatch(where: string, document: Data, operations: Data[]): void {
  for (const { op, path: at, value, ...rest } of operations) {
    if (Object.keys(rest).length > 0) throw new Error(`${where}: ${op} with ${Object.keys(rest).join(', ')}`);
    const tokens = pointer(where, String(at));
    const { parent, key } = locate(where, document, tokens);
    const isArray = Array.isArray(parent);
    const index = key === '-' && isArray ? parent.length : Number(key);
    const exists = isArray ? Number.isInteger(index) && index >= 0 && index < parent.length : key in parent;
    if (op === 'add') {
      if (isArray) parent.splice(index, 0, structuredClone(value));
      else parent[key] = structuredClone(value);
    } else if (op === 'remove' || op === 'replace') {
      if (!exists) throw new Error(`${where}: ${op} ${at}, which does not exist`);
      if (op === 'remove') {
        if (isArray) parent.splice(index, 1);
        else delete parent[key];
      } else parent[isArray ? index : key] = structuredClone(value);
    } else if (op === 'test') {
      const actual = exists ? parent[isArray ? index : key] : undefined;
      if (JSON.stringify(actual) !== JSON.stringify(value))
        throw new Error(`${where}: test ${at} is ${JSON.stringify(actual)}, not ${JSON.stringify(value)}`);
    } else throw new Error(`${where}: operation ${op} is not rendered here`);
  }
}

/** Whether a patch's target selects an object (kind exactly, name as a whole-name regular expression). */
function selects(where: string, target: Data, object: Data): boolean {
  const unknown = Object.keys(target ?? {}).filter((key) => !['kind', 'name'].includes(key));
  if (unknown.length > 0) throw new Error(`${where}: target ${unknown.join(', ')} is not rendered here`);
  if (target?.kind !== undefined && target.kind !== object?.kind) return false;
  return target?.name === undefined || new RegExp(`^(?:${target.name})$`).test(object?.metadata?.name ?? '');
}

/** One entry of `patches` applied to `objects`: a JSON 6902 patch, or a delete. */
function applyPatch(where: string, entry: Data, objects: K8sObject[]): K8sObject[] {
  const unknown = Object.keys(entry ?? {}).filter((key) => !['target', 'patch'].includes(key));
  if (unknown.length > 0 || typeof entry?.patch !== 'string' || !entry.target)
    throw new Error(`${where}: only an inline patch with a target is rendered here`);
  const body: Data = parse(entry.patch);
  const targets = objects.filter((o) => selects(where, entry.target, o.object));
  if (targets.length === 0) throw new Error(`${where}: the target matches nothing`);
  if (Array.isArray(body)) {
    for (const o of targets)
      applyJsonPatch(`${where} on ${o.object.kind}/${o.object.metadata?.name}`, o.object, body);
    return objects;
  }
  const { $patch, apiVersion, kind, metadata, ...rest } = body ?? {};
  if ($patch !== 'delete' || Object.keys(rest).length > 0 || Object.keys(metadata ?? {}).join() !== 'name')
    throw new Error(`${where}: a strategic merge patch other than $patch: delete is not rendered here`);
  const deleted = targets.filter((o) => o.object.apiVersion === apiVersion && o.object.kind === kind);
  return objects.filter((o) => !deleted.includes(o));
}

/**
 * The objects `kubectl kustomize <dir>` renders (`dir` relative to the repository root), each with the
 * file it came from; `read` gives the documents of a file (files.ts's readYamlDocuments).
 */
export function kustomize(dir: string, read: (file: string) => Data[]): K8sObject[] {
  const clean = path.posix.normalize(dir.replace(/^\.\//, ''));
  const file = `${clean}/kustomization.yaml`;
  const kustomization: Data = read(file)[0];
  const unknown = Object.keys(kustomization ?? {}).filter(
    (key) => !['apiVersion', 'kind', 'resources', 'patches'].includes(key),
  );
  if (unknown.length > 0) throw new Error(`${file}: ${unknown.join(', ')} is not rendered here`);
  let objects: K8sObject[] = [];
  for (const resource of kustomization.resources ?? []) {
    const relative = path.posix.normalize(`${clean}/${resource}`);
    if (!relative.startsWith(`${clean}/`) || !/\.ya?ml$/.test(relative))
      throw new Error(`${file}: resource ${resource} is not a YAML file below ${clean}`);
    objects.push(...read(relative).map((object) => ({ file: relative, object })));
  }
  (kustomization.patches ?? []).forEach((entry: Data, index: number) => {
    objects = applyPatch(`${file} patches[${index}]`, entry, objects);
  });
  return legacySort(objects);
}
