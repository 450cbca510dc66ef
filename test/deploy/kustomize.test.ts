import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { profileManifests, readYaml, readYamlDocuments, type Data } from './support/files.js';
import { applyJsonPatch, kustomize } from './support/kustomize.js';

/** A reader over files held in memory, as kustomize() takes one. */
const reader =
  (files: Record<string, Data | Data[]>) =>
  (file: string): Data[] => {
    if (!(file in files)) throw new Error(`${file}: no such file`);
    const content = files[file];
    return Array.isArray(content) ? content : [content];
  };
const deployment = (name: string, replicas = 1) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name },
  spec: { replicas, template: { spec: { volumes: [{ name: 'tmp' }, { name: 'data' }] } } },
});
const kustomization = (extra: Data) => ({
  apiVersion: 'kustomize.config.k8s.io/v1beta1',
  kind: 'Kustomization',
  resources: ['a.yaml'],
  ...extra,
});

describe("the kustomization renderer (kubectl kustomize's rendering, without kubectl)", () => {
  it('renders the nats profile: the patches applied, the claim deleted, sorted by kind', () => {
    const objects = kustomize('./infra', readYamlDocuments);
    const names = objects.map((o) => `${o.object.kind}/${o.object.metadata.name}`);
    expect(names.slice(0, 2)).toEqual(['ConfigMap/event-transport', 'ConfigMap/nats-config']);
    expect(names.indexOf('StatefulSet/nats')).toBeGreaterThan(names.indexOf('Deployment/query-depl'));
    expect(names.at(-1)).toBe('NetworkPolicy/blog-default-deny-ingress');
    expect(names).not.toContain('PersistentVolumeClaim/event-bus-data');
    const bus = objects.find((o) => o.object.metadata.name === 'event-bus-depl')!;
    expect(bus.file).toBe('infra/k8s/event-bus-depl.yaml');
    expect(bus.object.spec.replicas).toBe(2);
    expect(bus.object.spec.template.spec.volumes.map((v: Data) => v.name)).toEqual(['tmp']);
    // The files themselves are untouched.
    expect(readYaml('infra/k8s/event-bus-depl.yaml').spec.replicas).toBe(1);
  });

  it('JSON patches: add, replace, remove, test, by kind or by name', () => {
    const files = {
      'k/kustomization.yaml': kustomization({
        resources: ['a.yaml', 'b.yaml'],
        patches: [
          {
            target: { kind: 'Deployment' },
            patch: stringify([{ op: 'replace', path: '/spec/replicas', value: 2 }]),
          },
          {
            target: { kind: 'Deployment', name: 'b-.*' },
            patch: stringify([
              { op: 'test', path: '/spec/template/spec/volumes/1/name', value: 'data' },
              { op: 'remove', path: '/spec/template/spec/volumes/1' },
              { op: 'add', path: '/metadata/labels', value: { app: 'b' } },
            ]),
          },
        ],
      }),
      'k/a.yaml': deployment('a-depl'),
      'k/b.yaml': deployment('b-depl'),
    };
    const objects = kustomize('k', reader(files)).map((o) => o.object);
    expect(
      objects.map((o) => [o.metadata.name, o.spec.replicas, o.spec.template.spec.volumes.length]),
    ).toEqual([
      ['a-depl', 2, 2],
      ['b-depl', 2, 1],
    ]);
    expect(objects[1].metadata.labels).toEqual({ app: 'b' });
  });

  it('refuses what it does not render, a failed test, a target matching nothing, a file above its folder', () => {
    const render =
      (extra: Data, more: Record<string, Data> = {}) =>
      () =>
        kustomize(
          'k',
          reader({ 'k/kustomization.yaml': kustomization(extra), 'k/a.yaml': deployment('a'), ...more }),
        );
    expect(render({ namePrefix: 'x-' })).toThrow('k/kustomization.yaml: namePrefix is not rendered here');
    const test = stringify([{ op: 'test', path: '/spec/replicas', value: 3 }]);
    expect(render({ patches: [{ target: { kind: 'Deployment' }, patch: test }] })).toThrow(
      'test /spec/replicas is 1, not 3',
    );
    const replace = stringify([{ op: 'replace', path: '/spec/replicas', value: 3 }]);
    expect(render({ patches: [{ target: { kind: 'Service' }, patch: replace }] })).toThrow(
      'the target matches nothing',
    );
    expect(
      render({ patches: [{ target: { kind: 'Deployment', labelSelector: 'app=a' }, patch: replace }] }),
    ).toThrow('target labelSelector is not rendered here');
    const merge = stringify({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'a' },
      spec: { replicas: 2 },
    });
    expect(render({ patches: [{ target: { kind: 'Deployment' }, patch: merge }] })).toThrow(
      'a strategic merge patch other than $patch: delete is not rendered here',
    );
    expect(render({ resources: ['../b.yaml'] })).toThrow('resource ../b.yaml is not a YAML file below k');
  });

  it('applies JSON patches as RFC 6902 says: append with -, remove what is not there fails', () => {
    const document = { list: [1, 2], map: { a: 1 } };
    applyJsonPatch('doc', document, [
      { op: 'add', path: '/list/-', value: 3 },
      { op: 'add', path: '/list/0', value: 0 },
      { op: 'remove', path: '/map/a' },
    ]);
    expect(document).toEqual({ list: [0, 1, 2, 3], map: {} });
    expect(() => applyJsonPatch('doc', document, [{ op: 'remove', path: '/map/a' }])).toThrow(
      'doc: remove /map/a, which does not exist',
    );
    expect(() => applyJsonPatch('doc', document, [{ op: 'move', from: '/list', path: '/x' }])).toThrow(
      'doc: move with from',
    );
  });
});

describe("a skaffold profile's manifests, as skaffold lays a profile over the top level", () => {
  const skaffold = {
    manifests: { rawYaml: ['./infra/k8s/*'] },
    profiles: [
      { name: 'over', manifests: { kustomize: { paths: ['./infra'] } } },
      {
        name: 'patched',
        manifests: { kustomize: { paths: ['./infra'] } },
        patches: [{ op: 'remove', path: '/manifests/rawYaml' }],
      },
      { name: 'list', manifests: { rawYaml: ['./infra/nats/*'] } },
    ],
  };

  it('keeps a top-level renderer the profile does not set, unless a patch removes it', () => {
    expect(profileManifests(skaffold, 'over')).toEqual({
      rawYaml: ['./infra/k8s/*'],
      kustomize: { paths: ['./infra'] },
    });
    expect(profileManifests(skaffold, 'patched')).toEqual({ kustomize: { paths: ['./infra'] } });
    expect(profileManifests(skaffold, 'list')).toEqual({ rawYaml: ['./infra/nats/*'] });
    expect(profileManifests(skaffold, 'none')).toEqual({ rawYaml: ['./infra/k8s/*'] });
  });
});
