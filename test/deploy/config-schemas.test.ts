import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { clone, readYaml } from './support/files.js';
import { compileSchema, errorsOf, schemasDir, skaffoldSchemaFile } from './support/json-schema.js';

const where = schemasDir();
if ('skip' in where)
  console.warn(`skaffold.yaml and docker-compose.yml schema checks skipped: ${where.skip}`);
const dir = 'dir' in where ? where.dir : '';

describe.skipIf('skip' in where)(
  'skaffold.yaml and docker-compose.yml against their official schemas',
  () => {
    const skaffold = readYaml('skaffold.yaml');
    const compose = readYaml('docker-compose.yml');

    it('skaffold.yaml is valid for the schema of its apiVersion', () => {
      const file = skaffoldSchemaFile(dir, skaffold);
      expect(existsSync(file), `${file} (the schema of ${skaffold.apiVersion})`).toBe(true);
      expect(errorsOf(compileSchema(file), skaffold)).toEqual([]);
    });

    it('skaffold.yaml is also valid for every newer schema in the folder (newer skaffold binaries read it)', () => {
      for (const version of ['v4beta12', 'v4beta13', 'v4beta14']) {
        const file = path.join(dir, `skaffold-${version}.json`);
        if (!existsSync(file)) continue;
        expect(errorsOf(compileSchema(file), { ...skaffold, apiVersion: `skaffold/${version}` })).toEqual([]);
      }
    });

    it('docker-compose.yml is valid for compose-spec.json', () => {
      expect(errorsOf(compileSchema(path.join(dir, 'compose-spec.json')), compose)).toEqual([]);
    });

    it('reports a broken skaffold.yaml: a misspelt field, a wrong type, the v2-style deploy.kubectl.manifests', () => {
      const broken = clone(skaffold);
      broken.build.artifacts[0].docker.dockerFile = broken.build.artifacts[0].docker.dockerfile;
      broken.build.local.push = 'no';
      broken.deploy.kubectl.manifests = ['./infra/k8s/*'];
      const errors = errorsOf(compileSchema(skaffoldSchemaFile(dir, broken)), broken);
      expect(errors.some((e) => e.includes('dockerFile'))).toBe(true);
      expect(errors.some((e) => e.startsWith('/build/local/push'))).toBe(true);
      expect(errors.some((e) => e.includes('manifests'))).toBe(true);
    });

    it('reports a broken nats profile: manifests under deploy, kustomize paths as a string, a patch without a path', () => {
      const broken = clone(skaffold);
      const profile = broken.profiles.find((p: { name: string }) => p.name === 'nats');
      profile.deploy = { kubectl: { manifests: ['./infra/nats/*'] } };
      profile.manifests.kustomize.paths = './infra';
      profile.patches = [{ op: 'remove' }];
      const errors = errorsOf(compileSchema(skaffoldSchemaFile(dir, broken)), broken);
      expect(errors.some((e) => e.includes('/profiles/1/manifests/kustomize/paths'))).toBe(true);
      expect(errors.some((e) => e.includes('/profiles/1/patches/0'))).toBe(true);
      expect(errors.some((e) => e.includes('manifests'))).toBe(true);
    });

    it('reports a broken docker-compose.yml: an unknown key, a bad depends_on condition', () => {
      const broken = clone(compose);
      broken.services.posts.healtcheck = broken.services.posts.healthcheck;
      broken.services.posts.depends_on['event-bus'].condition = 'service_ready';
      const errors = errorsOf(compileSchema(path.join(dir, 'compose-spec.json')), broken);
      expect(errors.some((e) => e.includes('healtcheck'))).toBe(true);
      expect(errors.some((e) => e.includes('condition') || e.includes('service_healthy'))).toBe(true);
    });
  },
);
