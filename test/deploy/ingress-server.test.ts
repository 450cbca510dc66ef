/**
 * scripts/dist/ingress-server.js, docker-compose.yml's `ingress` (scripts/Dockerfile), as a real process:
 * it reads the real infra/k8s/ingress-srv.yaml and sends each path to the Service the Ingress names, at
 * that very name (compose's aliases). Here those names do not resolve, so a routed path answers 502
 * naming the Service it tried: which is what shows the routing.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/files.js';
import { artifactDependencies } from './support/skaffold-dev-loop.js';

const server = path.join(ROOT, 'scripts/dist/ingress-server.js');
let stop: (() => void) | undefined;
let base = '';

function start(env: Record<string, string>) {
  const child = spawn(process.execPath, [server], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { child, exited, output: () => output };
}

beforeAll(async () => {
  const started = start({ PORT: '0' });
  stop = () => started.child.kill('SIGTERM');
  await new Promise<void>((resolve, reject) => {
    const timer = setInterval(() => {
      const match = /routing (http:\/\/\S+)/.exec(started.output());
      if (match) {
        clearInterval(timer);
        base = match[1]!.replace('0.0.0.0', '127.0.0.1');
        resolve();
      }
    }, 50);
    void started.exited.then((code) => reject(new Error(`exited ${code}: ${started.output()}`)));
  });
});
afterAll(() => stop?.());

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
    const badPort = start({ PORT: 'eighty' });
    expect(await badPort.exited).toBe(1);
    expect(badPort.output()).toContain('PORT');
    const noFile = start({ PORT: '0', INGRESS_FILE: path.join(ROOT, 'infra/k8s/nothing.yaml') });
    expect(await noFile.exited).toBe(1);
    expect(noFile.output()).toContain('nothing.yaml');
  });

  it('is copied into its image with every module it imports (scripts/Dockerfile names each file)', () => {
    const dist = path.join(ROOT, 'scripts/dist');
    const needed = new Set<string>();
    const visit = (file: string) => {
      if (needed.has(file)) return;
      needed.add(file);
      const source = readFileSync(path.join(dist, file), 'utf8');
      for (const [, name] of source.matchAll(/from '\.\/([\w.-]+\.js)'/g)) visit(name!);
    };
    visit('ingress-server.js');
    const copy = readFileSync(path.join(ROOT, 'scripts/Dockerfile'), 'utf8')
      .split('\n')
      .find((line) => line.includes('/app/scripts/dist/ingress-server.js'))!;
    const copied = [...copy.matchAll(/\/app\/scripts\/dist\/([\w.-]+\.js)/g)].map(([, name]) => name);
    expect(needed.size).toBeGreaterThan(3);
    expect(copied.sort()).toEqual([...needed].sort());
    // ...and each one's source reaches the build: .dockerignore keeps only the router's files of scripts/.
    const context = artifactDependencies(ROOT, {
      image: 'blog/ingress',
      context: '.',
      dockerfile: 'scripts/Dockerfile',
      sync: [],
    });
    for (const file of needed) expect(context, file).toContain(`scripts/src/${file.replace(/\.js$/, '.ts')}`);
  });
});
