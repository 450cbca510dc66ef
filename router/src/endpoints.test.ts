import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/wait-for.js';
import type { ReadinessProbe } from './endpoints.js';
import { readPodLifecycles } from './manifests.js';
import { startRouter, type Backend, type Router } from './router.js';

const INGRESS_FILE = fileURLToPath(new URL('../../infra/k8s/ingress-srv.yaml', import.meta.url));
const K8S_DIR = fileURLToPath(new URL('../../infra/k8s', import.meta.url));
const FAST_PROBE: ReadinessProbe = {
  path: '/readyz',
  periodMs: 50,
  timeoutMs: 1000,
  failureThreshold: 2,
  successThreshold: 1,
};

interface Replica {
  name: string;
  url: string;
  seen: { method: string; url: string; body: string }[];
  ready: boolean;
  /** Methods whose requests it resets once they have arrived, without answering. */
  drops: Set<string>;
  server: http.Server;
}

async function startReplica(name: string): Promise<Replica> {
  const replica = { name, seen: [], ready: true, drops: new Set() } as unknown as Replica;
  replica.server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (req.url === '/readyz') return void res.writeHead(replica.ready ? 200 : 503).end();
      if (replica.drops.has(req.method!)) return void req.socket.destroy();
      const body = Buffer.concat(chunks).toString();
      replica.seen.push({ method: req.method!, url: req.url!, body });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ replica: name, body }));
    });
  });
  await new Promise<void>((resolve) => replica.server.listen(0, '127.0.0.1', resolve));
  replica.url = `http://127.0.0.1:${(replica.server.address() as AddressInfo).port}`;
  return replica;
}

/** A port nothing listens on: taken, then given back. */
async function closedPortUrl(): Promise<string> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

const replicas: Replica[] = [];
let router: Router | undefined;
afterEach(async () => {
  await router?.close();
  router = undefined;
  await Promise.all(replicas.splice(0).map((r) => new Promise((resolve) => r.server.close(resolve))));
});

/** A router whose query and posts Services have the given endpoints; the rest is never reached. */
async function routerFor(services: { query?: string[]; posts?: string[] }, probe?: ReadinessProbe) {
  const proxy = (urls: string[] | undefined, name: string): Backend => ({
    kind: 'proxy',
    url: urls ?? ['http://127.0.0.1:9'],
    name,
    probe,
  });
  router = await startRouter({
    ingressFile: INGRESS_FILE,
    backends: {
      'query-srv:4002': proxy(services.query, 'query'),
      'posts-clusterip-srv:4000': proxy(services.posts, 'posts'),
      'comments-srv:4001': proxy(undefined, 'comments'),
      'client-srv:3000': proxy(undefined, 'client'),
    },
  });
  return router;
}

const replicaOf = async (response: Response) => ((await response.json()) as { replica: string }).replica;

describe('the pods of each Service, as infra/k8s defines them', () => {
  it('reads each Service port’s readinessProbe from the Deployment it selects', () => {
    const lifecycles = readPodLifecycles(K8S_DIR);
    expect(lifecycles['query-srv:4002']).toMatchObject({
      deployment: 'query-depl',
      readinessProbe: { path: '/readyz', periodMs: 5000, timeoutMs: 3000, failureThreshold: 2 },
    });
    // Two Services select the posts pods.
    expect(lifecycles['posts-srv:4000']?.deployment).toBe('posts-depl');
    expect(lifecycles['posts-clusterip-srv:4000']?.deployment).toBe('posts-depl');
  });

  it('reads the preStop sleep, either form, and Kubernetes’ defaults for what is left out', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'manifests-'));
    const manifest = (app: string, lifecycle: string) => `
apiVersion: apps/v1
kind: Deployment
metadata: { name: ${app}-depl }
spec:
  template:
    metadata: { labels: { app: ${app} } }
    spec:
      containers:
        - name: ${app}
          ports: [{ containerPort: 80 }]
          readinessProbe: { httpGet: { path: /ready, port: 80 } }
          lifecycle: ${lifecycle}
---
apiVersion: v1
kind: Service
metadata: { name: ${app}-srv }
spec: { selector: { app: ${app} }, ports: [{ port: 8080, targetPort: 80 }] }
`;
    try {
      writeFileSync(
        path.join(dir, 'a.yaml'),
        manifest('a', "{ preStop: { exec: { command: ['sleep', '7'] } } }"),
      );
      writeFileSync(path.join(dir, 'b.yml'), manifest('b', '{ preStop: { sleep: { seconds: 3 } } }'));
      const lifecycles = readPodLifecycles(dir);
      expect(lifecycles['a-srv:8080']).toEqual({
        deployment: 'a-depl',
        readinessProbe: {
          path: '/ready',
          periodMs: 10_000,
          timeoutMs: 1000,
          failureThreshold: 3,
          successThreshold: 1,
        },
        preStopMs: 7000,
        terminationGraceMs: 30_000,
      });
      expect(lifecycles['b-srv:8080']?.preStopMs).toBe(3000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the router in front of several replicas', () => {
  it('sends requests round robin to the ready replicas, and none to one that is not ready or terminating', async () => {
    const [a, b] = [await startReplica('a'), await startReplica('b')];
    replicas.push(a, b);
    const { url, endpoints } = await routerFor({ query: [a.url, b.url] }, FAST_PROBE);
    const pool = endpoints('query-srv:4002');
    await Promise.all([pool.whenReady(a.url), pool.whenReady(b.url)]);

    const served = [];
    for (let i = 0; i < 4; i++) served.push(await replicaOf(await fetch(`${url}/posts`)));
    expect(served.sort()).toEqual(['a', 'a', 'b', 'b']);

    // Its probe fails failureThreshold times: out of rotation.
    a.ready = false;
    await waitFor(() => pool.readyCount === 1, { message: 'a stayed in rotation' });
    for (let i = 0; i < 3; i++) expect(await replicaOf(await fetch(`${url}/posts`))).toBe('b');

    // Terminating: out at once, and with no replica left ready, 503 JSON.
    pool.terminate(b.url);
    const none = await fetch(`${url}/posts`);
    expect(none.status).toBe(503);
    expect(await none.json()).toEqual({
      errors: [{ message: expect.stringContaining('has no endpoint ready to serve') }],
    });

    // A new replica joins once its probe passes.
    const c = await startReplica('c');
    replicas.push(c);
    pool.add(c.url);
    await pool.whenReady(c.url);
    expect(await replicaOf(await fetch(`${url}/posts`))).toBe('c');
  });

  it('sends a request it could not connect to the next replica, the body whole', async () => {
    const live = await startReplica('live');
    replicas.push(live);
    // Endpoints without a probe are always in rotation: the closed port is tried as often as the other.
    const { url } = await routerFor({ posts: [await closedPortUrl(), live.url] });
    for (let i = 0; i < 4; i++) {
      const response = await fetch(`${url}/posts/create`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ title: `post ${i}` }),
      });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        replica: 'live',
        body: JSON.stringify({ title: `post ${i}` }),
      });
    }
    expect(live.seen).toHaveLength(4);
  });

  it('never sends a POST again once a replica took it, and sends a GET again', async () => {
    const [dropping, other] = [await startReplica('dropping'), await startReplica('other')];
    replicas.push(dropping, other);
    dropping.drops.add('POST').add('GET');
    const { url } = await routerFor({ posts: [dropping.url, other.url], query: [dropping.url, other.url] });
    const answers = [];
    for (let i = 0; i < 2; i++) {
      const response = await fetch(`${url}/posts/create`, { method: 'POST', body: '{}' });
      answers.push(response.status);
      await response.arrayBuffer();
    }
    // One of the two went to the replica that reset it: 502, and the other replica saw it never.
    expect(answers.sort()).toEqual([200, 502]);
    expect(other.seen.filter((request) => request.method === 'POST')).toHaveLength(1);

    // A GET it resets goes to the other replica.
    for (let i = 0; i < 2; i++) expect(await replicaOf(await fetch(`${url}/posts`))).toBe('other');
    expect(dropping.seen).toEqual([]);
  });
});
