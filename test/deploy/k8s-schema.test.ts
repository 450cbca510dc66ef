import { describe, expect, it } from 'vitest';
import {
  clone,
  loadObjects,
  loadStack,
  MANIFEST_DIRS,
  manifestFiles,
  readYamlDocuments,
} from './support/files.js';
import { schemaErrors, unknownFields, validateObjects } from './support/k8s-schema.js';

describe('Kubernetes manifests against the Kubernetes schemas (kubernetes-models)', () => {
  it.each(MANIFEST_DIRS.flatMap((dir) => manifestFiles(dir)))(
    '%s is valid, with no unknown field',
    (file) => {
      const objects = readYamlDocuments(file).map((object) => ({ file, object }));
      expect(objects.length).toBeGreaterThan(0);
      expect(validateObjects(objects)).toEqual([]);
    },
  );

  it('covers every folder: what skaffold applies (the nats profile too, network policies included), the lessons', () => {
    const kinds = loadObjects().map(({ file, object }) => `${file.split('/')[1]}:${object.kind}`);
    for (const expected of [
      'k8s:Deployment',
      'k8s:Service',
      'k8s:Ingress',
      'k8s:PersistentVolumeClaim',
      'k8s:ConfigMap',
      'nats:StatefulSet',
      'nats:Service',
      'nats:PodDisruptionBudget',
      'nats:ConfigMap',
      'k8s:NetworkPolicy',
      'nats:NetworkPolicy',
      'lessons:Pod',
      'lessons:Deployment',
    ]) {
      expect(kinds).toContain(expected);
    }
  });
});

describe('what each deploy applies, as rendered', () => {
  it('the nats profile (infra/kustomization.yaml, patches applied) is valid, with no unknown field', () => {
    const { natsProfile } = loadStack();
    expect(natsProfile.length).toBeGreaterThan(0);
    expect(validateObjects(natsProfile)).toEqual([]);
  });

  it('the kustomization itself holds only the fields the checks render', () => {
    const kustomization = readYamlDocuments('infra/kustomization.yaml');
    expect(
      validateObjects(kustomization.map((object) => ({ file: 'infra/kustomization.yaml', object }))),
    ).toEqual([]);
    const broken = { ...kustomization[0], namePrefix: 'blog-' };
    expect(schemaErrors(broken)).toEqual(['/namePrefix: a field the manifest checks do not render']);
  });
});

describe('the schema checker reports broken manifests', () => {
  const deployment = () =>
    clone(loadObjects(['infra/k8s']).find((o) => o.object.kind === 'Deployment')!.object);

  it('a wrong type, a wrong enum value and a missing required field, all at once', () => {
    const broken = deployment();
    broken.spec.replicas = 'two';
    broken.spec.template.spec.containers[0].imagePullPolicy = 'Sometimes';
    delete broken.spec.template.spec.containers[0].name;
    const errors = schemaErrors(broken);
    expect(errors.some((e) => e.startsWith('/spec/replicas:'))).toBe(true);
    expect(errors.some((e) => e.startsWith('/spec/template/spec/containers/0/imagePullPolicy:'))).toBe(true);
    expect(errors.some((e) => e.includes('required') && e.includes('name'))).toBe(true);
  });

  it('unknown fields, at any depth, which the plain schemas let through', () => {
    const broken = deployment();
    broken.spec.replica = 1;
    broken.spec.template.spec.containers[0].readinessprobe = { httpGet: { path: '/readyz', port: 4000 } };
    broken.spec.template.spec.securityContext.runAsNonroot = true;
    expect(schemaErrors(broken)).toEqual([]);
    expect(unknownFields(broken).sort()).toEqual([
      '/spec/replica: unknown field',
      '/spec/template/spec/containers/0/readinessprobe: unknown field',
      '/spec/template/spec/securityContext/runAsNonroot: unknown field',
    ]);
  });

  it('keys of maps (labels, annotations, selectors) are not unknown fields', () => {
    const object = deployment();
    object.metadata.annotations = { 'example.com/anything': 'x' };
    expect(unknownFields(object)).toEqual([]);
  });

  it('a ConfigMap with a number for a value, and a misspelt envFrom', () => {
    const config = clone(loadObjects(['infra/nats']).find((o) => o.object.kind === 'ConfigMap')!.object);
    config.data.NATS_PORT = 4222;
    expect(schemaErrors(config).some((e) => e.startsWith('/data/NATS_PORT:'))).toBe(true);
    const broken = clone(
      loadObjects(['infra/k8s']).find((o) => o.object.metadata.name === 'posts-depl')!.object,
    );
    broken.spec.template.spec.containers[0].envFrom[0].configMapref = { name: 'event-transport' };
    expect(unknownFields(broken)).toEqual([
      '/spec/template/spec/containers/0/envFrom/0/configMapref: unknown field',
    ]);
  });

  it('a kind it has no schema for', () => {
    expect(schemaErrors({ apiVersion: 'v1', kind: 'Potato', metadata: { name: 'x' } })).toEqual([
      'no schema for apiVersion v1, kind Potato',
    ]);
  });

  it('an Ingress with a v1beta1-style backend', () => {
    const ingress = clone(loadObjects(['infra/k8s']).find((o) => o.object.kind === 'Ingress')!.object);
    ingress.spec.rules[0].http.paths[0].backend = { serviceName: 'posts-clusterip-srv', servicePort: 4000 };
    const problems = validateObjects([{ file: 'x.yaml', object: ingress }]);
    expect(problems.some((p) => p.includes('/backend/serviceName: unknown field'))).toBe(true);
  });
});
