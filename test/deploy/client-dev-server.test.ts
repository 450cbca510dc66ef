/**
 * The client's dev server (what `skaffold dev` and `npm run dev` run) answers the host the Ingress names,
 * posts.com, as well as localhost, and refuses any other host, as Vite does by default against DNS
 * rebinding. Vite's real dev server, started from client/vite.config.ts, asked over real HTTP.
 */
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createServer, loadConfigFromFile, type ViteDevServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readIngress } from '@blog/router';
import { raw } from '../support/raw-http.js';
import { ROOT } from './support/files.js';

let server: ViteDevServer;
let port = 0;

/** GET / with a given Host header. */
const asHost = (host: string) => raw(`http://127.0.0.1:${port}`, { path: '/', headers: { host } });

describe('the client dev server and the Ingress host', () => {
  beforeAll(async () => {
    server = await createServer({
      configFile: path.join(ROOT, 'client/vite.config.ts'),
      root: path.join(ROOT, 'client'),
      logLevel: 'silent',
      server: { host: '127.0.0.1', port: 0, strictPort: false, hmr: false, watch: null },
      optimizeDeps: { noDiscovery: true, include: [] },
    });
    await server.listen();
    port = (server.httpServer!.address() as AddressInfo).port;
  }, 60_000);
  afterAll(async () => {
    await server?.close();
  });

  it('allows exactly the hosts of infra/k8s/ingress-srv.yaml', async () => {
    const hosts = readIngress(path.join(ROOT, 'infra/k8s/ingress-srv.yaml')).hosts;
    expect(hosts).toContain('posts.com');
    // As written in the file (Vite adds the address it listens on to the list it resolves).
    const loaded = await loadConfigFromFile(
      { command: 'serve', mode: 'development' },
      path.join(ROOT, 'client/vite.config.ts'),
    );
    expect(loaded?.config.server?.allowedHosts).toEqual(hosts);
  });

  it('serves the app to Host: posts.com and to localhost', async () => {
    for (const host of ['posts.com', `localhost:${port}`, `127.0.0.1:${port}`]) {
      const answer = await asHost(host);
      expect(answer.status, host).toBe(200);
      expect(answer.body, host).toContain('<div id="root">');
    }
  });

  it('refuses any other host, with Vite’s message', async () => {
    for (const host of ['stranger.example', 'posts.com.stranger.example', 'api.posts.com']) {
      const answer = await asHost(host);
      expect(answer.status, host).toBe(403);
      expect(answer.body, host).toContain('Blocked request');
    }
  });
});
