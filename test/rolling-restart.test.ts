import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { HttpClient } from '@blog/common';
import { uniqueStreamName } from '@blog/common/nats-server';
import type { ExitInfo, ManagedProcess } from '@blog/common/process';
import { natsAvailability, natsForTests } from '@blog/common/testing';
import {
  readPodLifecycles,
  startRouter,
  type Backend,
  type EndpointPool,
  type PodLifecycle,
  type Router,
} from '@blog/router';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts } from '../scripts/src/process/ports.js';
import { blogProcess } from './support/blog-process.js';
import { waitFor } from './support/wait-for.js';

/**
 * `kubectl rollout restart deployment`, done locally: real processes on a real nats-server,
 * `ROLLING_REPLICAS` replicas of each service (each its own port and HOSTNAME), the bus as the NATS
 * gateway, and the router in front with every replica of a Service as its endpoints, probed as the
 * manifests say. Every Deployment is restarted at once, and each replaces its replicas one at a time as
 * maxSurge 1 and maxUnavailable 0 do: the new one starts, the router finds it ready, the old one is marked
 * terminating, the preStop time passes, then SIGTERM, and the old one must exit 0. Meanwhile several
 * clients write posts and comments through the router, as browsers would through the Ingress; not one may
 * see an error, and every acknowledged write must end up in query with its comments in their final status.
 *
 * The probes' periods and the preStop's time are the manifests' divided by TIME_SCALE, so the whole rollout
 * fits in `npm test`.
 */

const REPLICAS = Number(process.env.ROLLING_REPLICAS ?? 2);
const TIME_SCALE = 10;
const WRITERS = 4;
const INGRESS_HOST = 'posts.com';
const ROOT = fileURLToPath(new URL('..', import.meta.url));

type ServiceName = 'posts' | 'comments' | 'query' | 'moderation';
/** In the order the rollout restarts them, with the Service in front of each Deployment. */
const SERVICES: Record<ServiceName, string> = {
  posts: 'posts-clusterip-srv:4000',
  comments: 'comments-srv:4001',
  query: 'query-srv:4002',
  moderation: 'moderation-srv:4003',
};

interface Replica {
  hostname: string;
  url: string;
  process: ManagedProcess;
}

interface Acknowledged {
  posts: Map<string, string>;
  /** By comment id: its post, its content, and the status moderation gives it. */
  comments: Map<string, { postId: string; content: string; status: 'approved' | 'rejected' }>;
}

const nats = natsAvailability();
const lifecycles = readPodLifecycles(path.join(ROOT, 'infra/k8s'));
const processes: ManagedProcess[] = [];
const cleanups: (() => unknown)[] = [];

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  await Promise.all(processes.map((child) => child.stop()));
});

function lifecycleOf(name: ServiceName): PodLifecycle {
  const lifecycle = lifecycles[SERVICES[name]];
  if (!lifecycle) throw new Error(`infra/k8s gives ${SERVICES[name]} no readinessProbe`);
  return lifecycle;
}

/**
 * The Deployment's probe, its period divided by TIME_SCALE; its timeout kept, as a loaded machine may
 * take that long to answer, and a probe that times out counts as a failure.
 */
function scaledProbe(name: ServiceName) {
  const { readinessProbe } = lifecycleOf(name);
  return { ...readinessProbe, periodMs: readinessProbe.periodMs / TIME_SCALE };
}

/** A process of the blog, ready (as a startupProbe) once it answers /healthz. */
async function spawnProcess(dir: string, hostname: string, env: NodeJS.ProcessEnv, stopTimeoutMs: number) {
  const [port] = (await freePorts(1)) as [number];
  const child = blogProcess(
    dir,
    port,
    { ...env, HOSTNAME: hostname },
    { name: hostname, stopTimeoutMs, readyPath: '/healthz' },
  );
  processes.push(child.process);
  await child.process.start();
  return child;
}

/** The writes of one client through the router, until `until` aborts; errors are kept, not thrown. */
async function writer(
  client: number,
  router: Router,
  acknowledged: Acknowledged,
  errors: string[],
  until: AbortSignal,
) {
  const api = new HttpClient();
  const send = async (route: string, body: unknown) => {
    try {
      const answer = await api.request(`${router.url}${route}`, {
        method: 'POST',
        body: JSON.stringify(body),
        headers: { Host: INGRESS_HOST },
        timeoutMs: 30_000,
      });
      if (answer.status === 201) return JSON.parse(answer.body) as unknown;
      errors.push(`client ${client}: POST ${route} answered ${answer.status} ${answer.body}`);
    } catch (err) {
      errors.push(`client ${client}: POST ${route} failed: ${(err as Error).message}`);
    }
    return undefined;
  };
  for (let i = 0; !until.aborted; i++) {
    const title = `post ${client}.${i}`;
    const post = (await send('/posts/create', { title })) as { id: string } | undefined;
    if (post) acknowledged.posts.set(post.id, title);
    const postIds = [...acknowledged.posts.keys()];
    const postId = postIds[Math.floor(Math.random() * postIds.length)];
    // Every third comment is one moderation rejects.
    const content = i % 3 === 0 ? `an orange, from ${client}.${i}` : `comment ${client}.${i}`;
    if (postId !== undefined) {
      const comments = (await send(`/posts/${postId}/comments`, { content })) as
        { id: string; content: string }[] | undefined;
      const made = comments?.find((comment) => comment.content === content);
      if (made) {
        const status = content.includes('orange') ? 'rejected' : 'approved';
        acknowledged.comments.set(made.id, { postId, content, status });
      }
    }
    await sleep(20);
  }
  api.close();
}

/** A browser on GET /posts/live through the router, opening it again whenever it ends. */
function liveClient(router: Router, errors: string[], until: AbortSignal) {
  let opened = 0;
  const open = () => {
    if (until.aborted) return;
    const req = http.get(`${router.url}/posts/live`, { headers: { Host: INGRESS_HOST } }, (res) => {
      if (res.statusCode !== 200) errors.push(`GET /posts/live answered ${res.statusCode}`);
      opened++;
      res.resume();
      res.once('end', () => setTimeout(open, 50));
    });
    req.once('error', (err) => {
      if (!until.aborted) errors.push(`GET /posts/live failed: ${err.message}`);
    });
    until.addEventListener('abort', () => req.destroy(), { once: true });
  };
  open();
  return { opened: () => opened };
}

/** How query's view, as `url` answers it, differs from the acknowledged writes; undefined if it holds exactly them. */
async function differenceFrom(url: string, acknowledged: Acknowledged, headers: Record<string, string> = {}) {
  const answer = await fetch(`${url}/posts`, { headers });
  const view = (await answer.json()) as Record<
    string,
    { title: string; comments: { id: string; content: string; status: string }[] }
  >;
  const posts = Object.keys(view).length;
  if (posts !== acknowledged.posts.size) return `${posts} posts, ${acknowledged.posts.size} acknowledged`;
  for (const [id, title] of acknowledged.posts) {
    if (view[id]?.title !== title) return `post ${id} is ${JSON.stringify(view[id])}, not "${title}"`;
  }
  const comments = Object.values(view).flatMap((post) => post.comments).length;
  if (comments !== acknowledged.comments.size) {
    return `${comments} comments, ${acknowledged.comments.size} acknowledged`;
  }
  for (const [id, expected] of acknowledged.comments) {
    const comment = view[expected.postId]?.comments.find((candidate) => candidate.id === id);
    if (comment?.content !== expected.content || comment.status !== expected.status) {
      return `comment ${id} is ${JSON.stringify(comment)}, not ${JSON.stringify(expected)}`;
    }
  }
  return undefined;
}

describe.skipIf(nats.skip)(`a rolling restart of every Deployment behind the router (${nats.reason})`, () => {
  it(`shows no client an error and loses no acknowledged write (${REPLICAS} replica(s) each)`, async () => {
    const server = await natsForTests();
    cleanups.push(() => server.stop());
    const transportEnv = {
      EVENT_TRANSPORT: 'nats',
      NATS_URL: server.url,
      NATS_STREAM: uniqueStreamName('rolling'),
      EVENT_BUS_TOKEN: '',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    };
    const bus = await spawnProcess('event-bus', 'event-bus-depl-0', transportEnv, 30_000);
    const serviceEnv = { ...transportEnv, EVENT_BUS_URL: bus.url };

    const deployments = {} as Record<ServiceName, Replica[]>;
    let pods = 0;
    const startReplica = async (name: ServiceName): Promise<Replica> => {
      const hostname = `${name}-depl-${++pods}`;
      const { terminationGraceMs, preStopMs } = lifecycleOf(name);
      // What is left of the grace period after the preStop hook: SIGKILL then, as the kubelet does.
      const stopTimeoutMs = terminationGraceMs - preStopMs;
      return { hostname, ...(await spawnProcess(name, hostname, serviceEnv, stopTimeoutMs)) };
    };
    for (const name of Object.keys(SERVICES) as ServiceName[]) {
      deployments[name] = await Promise.all(Array.from({ length: REPLICAS }, () => startReplica(name)));
    }

    const clientDir = mkdtempSync(path.join(os.tmpdir(), 'client-'));
    cleanups.push(() => rmSync(clientDir, { recursive: true, force: true }));
    const backends: Record<string, Backend> = {
      'client-srv:3000': { kind: 'static', dir: clientDir, name: 'client' },
    };
    for (const [name, service] of Object.entries(SERVICES) as [ServiceName, string][]) {
      const urls = deployments[name].map((replica) => replica.url);
      backends[service] = { kind: 'proxy', url: urls, name, probe: scaledProbe(name) };
    }
    const router = await startRouter({
      ingressFile: path.join(ROOT, 'infra/k8s/ingress-srv.yaml'),
      backends,
    });
    cleanups.push(() => router.close());
    const poolOf = (name: ServiceName): EndpointPool => router.endpoints(SERVICES[name]);
    for (const name of Object.keys(SERVICES) as ServiceName[]) {
      await Promise.all(deployments[name].map((replica) => poolOf(name).whenReady(replica.url)));
    }

    const acknowledged: Acknowledged = { posts: new Map(), comments: new Map() };
    const errors: string[] = [];
    const writing = new AbortController();
    cleanups.push(() => writing.abort());
    const live = liveClient(router, errors, writing.signal);
    const writers = Array.from({ length: WRITERS }, (_, client) =>
      writer(client, router, acknowledged, errors, writing.signal),
    );
    await waitFor(() => acknowledged.comments.size >= WRITERS, {
      timeoutMs: 20_000,
      message: 'no writes went through',
    });

    // The rollout, as `kubectl rollout restart deployment` does it: every Deployment at once, each one
    // replica at a time, a new one up before the old one goes.
    const exits: { hostname: string; exit: ExitInfo | undefined }[] = [];
    const rollOut = async (name: ServiceName) => {
      const pool = poolOf(name);
      const preStopMs = lifecycleOf(name).preStopMs / TIME_SCALE;
      for (let i = 0; i < REPLICAS; i++) {
        const old = deployments[name].shift()!;
        const surge = await startReplica(name);
        pool.add(surge.url);
        await pool.whenReady(surge.url);
        deployments[name].push(surge);
        pool.terminate(old.url);
        await sleep(preStopMs);
        exits.push({ hostname: old.hostname, exit: await old.process.stop() });
        pool.remove(old.url);
      }
    };
    await Promise.all((Object.keys(SERVICES) as ServiceName[]).map(rollOut));
    // Writes go on a moment on the new replicas only, then stop.
    const before = acknowledged.comments.size;
    await waitFor(() => acknowledged.comments.size >= before + WRITERS, { timeoutMs: 20_000 });
    writing.abort();
    await Promise.all(writers);

    expect(errors).toEqual([]);
    expect(exits).toHaveLength(4 * REPLICAS);
    expect(exits).toEqual(exits.map(({ hostname }) => ({ hostname, exit: { code: 0, signal: null } })));
    // The live stream was ended by each query replica that stopped, and opened again on another.
    expect(live.opened()).toBeGreaterThan(1);
    // Through the router, whichever query replica answers, and from each replica itself.
    let difference: string | undefined;
    const urls = [
      ...Array.from({ length: REPLICAS + 1 }, () => router.url),
      ...deployments.query.map((r) => r.url),
    ];
    await waitFor(
      async () => {
        for (const url of urls) {
          difference = await differenceFrom(url, acknowledged, { Host: INGRESS_HOST });
          if (difference) return false;
        }
        return true;
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    ).catch(() => expect.fail(`query does not show every acknowledged write: ${difference}`));
    expect(acknowledged.posts.size).toBeGreaterThan(0);
  }, 120_000);
});
