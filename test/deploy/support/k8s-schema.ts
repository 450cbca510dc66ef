/**
 * Kubernetes schema checks with kubernetes-models (the Kubernetes OpenAPI schemas compiled to validators).
 *
 * 1. `validate()` of the object's model: types, enums, required fields. Every error is reported.
 * 2. A strict pass for unknown fields, which the Kubernetes schemas allow (the API server drops them
 *    silently, so a typo like `readinessprobe` or `imagePullpolicy` would simply not apply). The same
 *    validator runs over the object wrapped in Proxies that record each property it reads: the validator
 *    reads every property its schema knows (and every key of a map), so a key it never read is one the
 *    schema does not have.
 */
import { Deployment, StatefulSet } from 'kubernetes-models/apps/v1';
import { Ingress, NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, PersistentVolumeClaim, Pod, Service } from 'kubernetes-models/v1';
import type { Data } from './files.js';

interface ModelClass {
  new (data: Data): { validate(): void };
  prototype: { validate(this: unknown): void };
}

/** The kinds this project uses; anything else is reported rather than waved through. */
const MODELS: Record<string, ModelClass> = {
  'apps/v1/Deployment': Deployment as unknown as ModelClass,
  'apps/v1/StatefulSet': StatefulSet as unknown as ModelClass,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget as unknown as ModelClass,
  'v1/Pod': Pod as unknown as ModelClass,
  'v1/ConfigMap': ConfigMap as unknown as ModelClass,
  'v1/Service': Service as unknown as ModelClass,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim as unknown as ModelClass,
  'networking.k8s.io/v1/Ingress': Ingress as unknown as ModelClass,
  'networking.k8s.io/v1/NetworkPolicy': NetworkPolicy as unknown as ModelClass,
};

interface AjvError {
  instancePath?: string;
  keyword?: string;
  message?: string;
  params?: unknown;
}

function describe(error: AjvError): string {
  const where = error.instancePath || '/';
  return `${where}: ${error.message ?? error.keyword} ${JSON.stringify(error.params ?? {})}`;
}

/** kustomize's file (no OpenAPI schema): the fields test/deploy/support/kustomize.ts renders, no other. */
const KUSTOMIZATION = 'kustomize.config.k8s.io/v1beta1/Kustomization';
const KUSTOMIZATION_FIELDS = ['apiVersion', 'kind', 'metadata', 'resources', 'patches'];

/** Schema errors of one object (empty when valid). */
export function schemaErrors(object: Data): string[] {
  if (`${object?.apiVersion}/${object?.kind}` === KUSTOMIZATION)
    return Object.keys(object).flatMap((key) =>
      KUSTOMIZATION_FIELDS.includes(key) ? [] : [`/${key}: a field the manifest checks do not render`],
    );
  const Model = MODELS[`${object?.apiVersion}/${object?.kind}`];
  if (!Model) return [`no schema for apiVersion ${object?.apiVersion}, kind ${object?.kind}`];
  try {
    new Model(object).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: AjvError[] }).errors;
    if (!errors) throw err;
    return errors.map(describe);
  }
}

/** Fields the object's schema does not know, as `/spec/template/spec/containers/0/imagePullpolicy`. */
export function unknownFields(object: Data): string[] {
  const Model = MODELS[`${object?.apiVersion}/${object?.kind}`];
  if (!Model) return [];
  const reads = new Map<object, { path: string; keys: Set<PropertyKey> }>();
  const wrap = (value: unknown, at: string): unknown => {
    if (value === null || typeof value !== 'object') return value;
    if (!reads.has(value)) reads.set(value, { path: at, keys: new Set() });
    return new Proxy(value, {
      get(target, key, receiver) {
        reads.get(target)!.keys.add(key);
        const inner: unknown = Reflect.get(target, key, receiver);
        return typeof key === 'string' ? wrap(inner, `${at}/${key}`) : inner;
      },
    });
  };
  try {
    Model.prototype.validate.call(wrap(object, ''));
  } catch {
    // Type errors are schemaErrors' to report; only the reads matter here.
  }
  const unknown: string[] = [];
  for (const [value, { path, keys }] of reads) {
    if (Array.isArray(value)) continue;
    for (const key of Object.keys(value)) {
      if (!keys.has(key)) unknown.push(`${path}/${key}: unknown field`);
    }
  }
  return unknown;
}

/** Both passes, every problem of every object, each line naming its file and object. */
export function validateObjects(objects: { file: string; object: Data }[]): string[] {
  return objects.flatMap(({ file, object }) => {
    const name = `${file} ${object?.kind}/${object?.metadata?.name}`;
    return [...schemaErrors(object), ...unknownFields(object)].map((problem) => `${name} ${problem}`);
  });
}
