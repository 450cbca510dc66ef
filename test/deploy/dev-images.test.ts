import { setTimeout as sleep } from 'node:timers/promises';
/**
 * What `skaffold dev` runs, run as the cluster runs it, and used as a learner uses it: at http://posts.com.
 *
 * The six `dev` targets skaffold.yaml names are built on a real Docker engine (base images made from this
 * machine's Node: support/docker.ts). Each runs with the settings of its Deployment in infra/k8s, read from
 * the manifest (support/pod.ts), under the names of its Services on one network. The local Ingress router
 * (router/Dockerfile) is in front, routing by infra/k8s/ingress-srv.yaml and passing the Host header on, as
 * ingress-nginx does; Debian's Chromium resolves posts.com to it. Then the course flow runs in the page,
 * and two saved files are synced as skaffold syncs them (a tar unpacked in the container): a moderation
 * rule, and the client's heading. Each must be live in the same container, with no image built.
 *
 * What only a real cluster shows (ingress-nginx itself, the kubelet's probes, skaffold's watcher) is listed
 * in docs/deploy.md. Skipped, with the reason printed, without a Docker engine or Chromium; CI has both.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumMissing, launchChromium } from '../../scripts/src/browser.js';
import { raw } from '../support/raw-http.js';
import { buildImage, dockerUnavailable, localBaseImages, must, run, syncFile } from './support/docker.js';
import { loadObjects, loadStack, ROOT } from './support/files.js';
import { podRun, type PodRun } from './support/pod.js';
import { artifactDependencies, decide, skaffoldArtifacts } from './support/skaffold-dev-loop.js';

const unavailable = dockerUnavailable() ?? chromiumMissing();
if (unavailable) console.warn(`Dev images test skipped: ${unavailable}`);

const project = `blogdev${process.pid}`;
const objects = loadObjects(['infra/k8s']);
const artifacts = skaffoldArtifacts(loadStack().skaffold);
const ROUTER_IMAGE = 'blog-test/ingress:ci';
const devImage = (artifactImage: string) => `blog-test/${artifactImage.split('/').at(-1)}:dev`;

interface Running extends PodRun {
  name: string;
  container: string;
  ip: string;
  readyAfterMs: number;
}
const pods = new Map<string, Running>();
let routerContainer = '';
let routerPort = 0;
let browser: Awaited<ReturnType<typeof launchChromium>> | undefined;
let page: Page;

/** The readiness path, polled from outside at the pod's address as the kubelet does: the ms until 200. */
async function untilReady(pod: Running, since: number, timeoutMs = 180_000): Promise<number> {
  const url = `http://${pod.ip}:${pod.readiness.port}${pod.readiness.path}`;
  while (Date.now() - since < timeoutMs) {
    const status = await fetch(url, { signal: AbortSignal.timeout(pod.readiness.timeoutMs) }).then(
      (res) => res.status,
      () => 0,
    );
    if (status === 200) return Date.now() - since;
    await sleep(100);
  }
  const logs = await run('docker', ['logs', '--tail', '40', pod.container]);
  throw new Error(`${pod.name} not ready at ${url}:\n${logs.stdout}${logs.stderr}`);
}

/** A container's output since a time (both streams), as `docker logs --since` gives it. */
async function logsSince(container: string, since: Date): Promise<string> {
  const { stdout, stderr } = await run('docker', ['logs', '--since', since.toISOString(), container]);
  return stdout + stderr;
}

/** What shows that a container is the same one: when it started, its restarts, its image. */
async function identity(container: string): Promise<string> {
  const { stdout } = await must('docker', [
    'inspect',
    '-f',
    '{{.State.StartedAt}} {{.RestartCount}} {{.Image}}',
    container,
  ]);
  return stdout.trim();
}

/**
 * A saved repository file, changed by `edit`, into the running container of `service` where skaffold
 * would sync it (decided as skaffold does: support/skaffold-dev-loop.ts). Returns when the copy is done.
 */
async function saveAndSync(service: string, file: string, edit: (source: string) => string): Promise<void> {
  const source = readFileSync(path.join(ROOT, file), 'utf8');
  const changed = edit(source);
  expect(changed, `${file} was not changed`).not.toBe(source);
  const artifact = artifacts.find((a) => a.image.endsWith(`/${service}`))!;
  const decision = decide(artifact, artifactDependencies(ROOT, artifact), file);
  if (decision.action !== 'sync') throw new Error(`skaffold would not sync ${file}: ${decision.action}`);
  await syncFile(pods.get(service)!.container, decision.to, changed);
}

const card = (title: string) =>
  page.getByTestId('post-card').filter({ has: page.getByRole('heading', { name: title, exact: true }) });

async function comment(title: string, content: string, shown: string): Promise<void> {
  const post = card(title);
  const before = await post.getByRole('listitem').count();
  await post.getByLabel('New Comment').fill(content);
  await post.getByRole('button', { name: 'Submit' }).click();
  // The new comment is the next item: an earlier one with the same text (two rejected) must not answer.
  await post.getByRole('listitem').nth(before).filter({ hasText: shown }).waitFor({ timeout: 30_000 });
}

describe.skipIf(unavailable !== undefined)(
  'the dev images behind the Ingress host, as skaffold dev runs them',
  () => {
    beforeAll(async () => {
      const bases = await localBaseImages();
      // The bus first: it fills the `npm ci` layer the other Dockerfiles share.
      const isBus = (a: (typeof artifacts)[number]) => a.image.endsWith('/event-bus');
      const ordered = [...artifacts.filter(isBus), ...artifacts.filter((a) => !isBus(a))];
      for (const artifact of ordered) {
        await buildImage(
          path.posix.join(artifact.context, artifact.dockerfile),
          artifact.target!,
          devImage(artifact.image),
          bases,
        );
      }
      await buildImage('router/Dockerfile', 'runtime', ROUTER_IMAGE, bases);
      await must('docker', ['network', 'create', project]);

      // Each artifact's image takes the place of the tag in the Deployment that names it, as skaffold does.
      // All start at once, as `kubectl apply` starts them; then each is polled until it is ready.
      const started = new Map<string, number>();
      const deployments = objects
        .filter((o) => o.object?.kind === 'Deployment')
        .map((o) => String(o.object.metadata.name));
      for (const deployment of deployments) {
        const settings = podRun(objects, deployment, project);
        const artifact = artifacts.find((a) => settings.image.split(':')[0] === a.image);
        if (!artifact) throw new Error(`${deployment}: no skaffold artifact builds ${settings.image}`);
        const name = artifact.image.split('/').at(-1)!;
        started.set(name, Date.now());
        const aliases = settings.aliases.flatMap((alias) => ['--network-alias', alias]);
        const { stdout } = await must('docker', [
          'run',
          '-d',
          '--name',
          `${project}-${name}`,
          '--network',
          project,
          ...aliases,
          ...settings.options,
          devImage(artifact.image),
        ]);
        const container = stdout.trim();
        const { stdout: ip } = await must('docker', [
          'inspect',
          '-f',
          '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
          container,
        ]);
        pods.set(name, { ...settings, name, container, ip: ip.trim(), readyAfterMs: 0 });
      }
      await Promise.all(
        [...pods.values()].map(async (pod) => {
          pod.readyAfterMs = await untilReady(pod, started.get(pod.name)!);
        }),
      );
      console.log(
        `Dev images: from container start to ready (readiness path 200): ${[...pods.values()].map((p) => `${p.name} ${(p.readyAfterMs / 1000).toFixed(1)} s`).join(', ')}`,
      );

      // The router as compose runs it, hardened the same way, published on a free local port.
      const { stdout } = await must('docker', [
        'run',
        '-d',
        '--name',
        `${project}-ingress`,
        '--network',
        project,
        '-p',
        '127.0.0.1::3000',
        '--read-only',
        '--tmpfs',
        '/tmp',
        '--cap-drop',
        'ALL',
        '--security-opt',
        'no-new-privileges',
        '--user',
        '1000:1000',
        ROUTER_IMAGE,
      ]);
      routerContainer = stdout.trim();
      const port = await must('docker', ['port', routerContainer, '3000']);
      routerPort = Number(port.stdout.trim().split('\n')[0]!.split(':').at(-1));
      browser = await launchChromium({
        args: [`--host-resolver-rules=MAP posts.com 127.0.0.1:${routerPort}`],
      });
      page = browser.context.pages()[0] ?? (await browser.context.newPage());
    }, 1_800_000);

    afterAll(async () => {
      await browser?.close();
      const containers = [...[...pods.values()].map((p) => p.container), routerContainer].filter(Boolean);
      if (containers.length > 0) await run('docker', ['rm', '-f', '-v', ...containers]);
      await run('docker', ['network', 'rm', project]);
      await run('docker', ['volume', 'rm', `${project}-event-bus-data`]);
    }, 120_000);

    it('runs every Deployment of infra/k8s with a dev image, as its manifest says', async () => {
      expect([...pods.keys()].sort()).toEqual([
        'client',
        'comments',
        'event-bus',
        'moderation',
        'posts',
        'query',
      ]);
      for (const pod of pods.values()) {
        const inside = await must('docker', [
          'exec',
          pod.container,
          'sh',
          '-c',
          'id -u; id -g; touch /app/x 2>&1 || true',
        ]);
        const [uid, gid, touch] = inside.stdout.trim().split('\n');
        expect([uid, gid], pod.name).toEqual(['1000', '1000']);
        expect(touch, `${pod.name}: the root filesystem is read-only`).toMatch(/read-only/i);
        // The process listens on the container port the manifest declares, on the pod's address.
        const alive = await fetch(`http://${pod.ip}:${pod.port}/healthz`).then((res) => res.status);
        expect(alive, `${pod.name} on its containerPort ${pod.port}`).toBe(200);
      }
    }, 60_000);

    it('serves the app at http://posts.com through the Ingress, and only to the hosts the Ingress names', async () => {
      const asHost = (host: string) =>
        raw(`http://127.0.0.1:${routerPort}`, { path: '/', headers: { host } });
      const app = await asHost('posts.com');
      expect(app.status, app.body).toBe(200);
      expect(app.body).toContain('<div id="root">');
      const stranger = await asHost('stranger.example');
      expect(stranger.status).toBe(403);
    });

    it('runs the course flow in Chromium at http://posts.com, without a reload', async () => {
      await page.goto('http://posts.com/');
      await page.evaluate('window.loadedOnce = true');
      expect(await page.getByRole('heading', { level: 1 }).allTextContents()).toEqual([
        'Create Post',
        'Posts',
      ]);
      await page.getByLabel('Title').fill('Dev loop');
      await page.getByRole('button', { name: 'Submit' }).first().click();
      await card('Dev loop').waitFor({ timeout: 30_000 });
      await comment('Dev loop', 'Apples are great', 'Apples are great');
      await comment('Dev loop', 'I prefer orange', 'This comment has been rejected');
      expect(await page.evaluate('window.loadedOnce')).toBe(true);
    }, 120_000);

    it('a changed moderation rule, synced as skaffold syncs it, decides the next comment', async () => {
      const moderation = pods.get('moderation')!;
      const before = await identity(moderation.container);
      const started = Date.now();
      await saveAndSync('moderation', 'moderation/src/projection.ts', (source) =>
        source.replace("content.includes('orange')", "content.includes('kiwi')"),
      );
      // nodemon restarts the service on the new source: wait for that restart and for readiness after it.
      const restarted = /restarting due to changes[\s\S]*moderation listening/;
      while (!restarted.test(await logsSince(moderation.container, new Date(started)))) {
        if (Date.now() - started > 120_000)
          throw new Error(
            `moderation did not restart:\n${await logsSince(moderation.container, new Date(0))}`,
          );
        await sleep(200);
      }
      await untilReady(moderation, started);
      const liveAfter = Date.now() - started;
      await comment('Dev loop', 'I like kiwi', 'This comment has been rejected');
      await comment('Dev loop', 'Another orange', 'Another orange');
      expect(await identity(moderation.container)).toBe(before);
      expect(await page.evaluate('window.loadedOnce')).toBe(true);
      console.log(
        `Dev images: a synced moderation rule was live ${(liveAfter / 1000).toFixed(1)} s after the sync (nodemon: tsc -b, restart, catch-up)`,
      );
    }, 180_000);

    it('a changed heading in client/src, synced, shows in the open page by hot reload through the Ingress', async () => {
      const client = pods.get('client')!;
      const before = await identity(client.container);
      const started = Date.now();
      await saveAndSync('client', 'client/src/App.tsx', (source) =>
        source.replace('<h1>Create Post</h1>', '<h1>Create a Post</h1>'),
      );
      await page.getByRole('heading', { name: 'Create a Post', exact: true }).waitFor({ timeout: 60_000 });
      const shownAfter = Date.now() - started;
      // Hot reload, not a page load: the mark set at the first load is still there, and so is the post.
      expect(await page.evaluate('window.loadedOnce')).toBe(true);
      await card('Dev loop').waitFor();
      expect(await identity(client.container)).toBe(before);
      console.log(
        `Dev images: a synced client heading showed in the page ${(shownAfter / 1000).toFixed(1)} s after the sync (Vite hot reload through the router)`,
      );
    }, 120_000);
  },
);
