/**
 * router/dist/ingress-server.js, docker-compose.yml's `ingress` (router/Dockerfile), as a real process:
 * it reads the real infra/k8s/ingress-srv.yaml and sends each path to the Service the Ingress names, at
 * that very name (compose's aliases). Here those names do not resolve, so a routed path answers 502
 * naming the Service it tried: which is what shows the routing.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ManagedProcess } from '@blog/common/process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/files.js';
import { artifactDependencies } from './support/skaffold-dev-loop.js';

const server = path.join(ROOT, 'router/dist/ingress-server.js');
let running: ManagedProcess | undefined;
let base = '';

/** The server, ready once it says where it routes. */
const ingress = (env: Record<string, string>) =>
  new ManagedProcess({
    name: 'ingress-server',
    command: process.execPath,
    args: [server],
    env: { ...process.env, ...env },
    ready: /routing http:\/\//,
    readyTimeoutMs: 10_000,
  });

beforeAll(async () => {
  running = ingress({ PORT: '0' });
  await running.start();
  const match = /routing (http:\/\/\S+)/.exec(running.logs().join('\n'));
  base = match![1]!.replace('0.0.0.0', '127.0.0.1');
});
afterAll(() => running?.stop());

describe('the ingress server of docker-compose.yml', () => {
  it.each([
    ['/posts/create', 'posts-clusterip-srv:4000'],
    ['/posts', 'query-srv:4002'],
    ['/posts/abc123/comments', 'comments-srv:4001'],
    ['/', 'client-srv:3000'],
  ])('routes %s to %s, by its Service name', async (route, service) => {
    const res = await fetch(`${base}${route}`);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { errors: { message: string }[] }).errors[0]!.message).toContain(service);
  });

  it('refuses to start on a bad PORT or a missing Ingress file, saying which', async () => {
    const badPort = ingress({ PORT: 'eighty' });
    await expect(badPort.start()).rejects.toThrow(/exited during start \(exit code 1\)/);
    expect(badPort.logs().join('\n')).toContain('PORT');
    const noFile = ingress({ PORT: '0', INGRESS_FILE: path.join(ROOT, 'infra/k8s/nothing.yaml') });
    await expect(noFile.start()).rejects.toThrow(/exited during start \(exit code 1\)/);
    expect(noFile.logs().join('\n')).toContain('nothing.yaml');
  });

  it('is built into its image with every module it imports, and installs each package it imports', () => {
    const dist = path.join(ROOT, 'router/dist');
    const modules = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      if (modules.has(file)) return;
      modules.add(file);
      const source = readFileSync(path.join(dist, file), 'utf8');
      for (const [, name] of source.matchAll(/from '([^']+)'/g)) {
        if (name!.startsWith('./')) visit(name!.slice(2));
        else if (!name!.startsWith('node:')) packages.add(name!);
      }
    };
    visit('ingress-server.js');
    expect(modules.size).toBeGreaterThan(3);
    // The image installs router/package.json's dependencies (npm ci --omit=dev): they must be what it imports.
    const { dependencies } = JSON.parse(readFileSync(path.join(ROOT, 'router/package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    expect([...packages].sort()).toEqual(Object.keys(dependencies).sort());
    // ...and each module's source reaches the build.
    const context = artifactDependencies(ROOT, {
      image: 'blog/ingress',
      context: '.',
      dockerfile: 'router/Dockerfile',
      sync: [],
    });
    for (const file of modules) expect(context, file).toContain(`router/src/${file.replace(/\.js$/, '.ts')}`);
  });
});
