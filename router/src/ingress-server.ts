/**
 * The local router as a process of its own: docker-compose.yml's `ingress` service (router/Dockerfile),
 * the stand-in for ingress-nginx there. It routes by infra/k8s/ingress-srv.yaml exactly as `npm start`
 * does; in compose every container answers to its Kubernetes Service name, so each backend of the
 * Ingress (`posts-clusterip-srv:4000`, ..., `client-srv:3000`) is reached at that very name and port.
 *
 *   PORT=3000 INGRESS_FILE=infra/k8s/ingress-srv.yaml node router/dist/ingress-server.js
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readIngress } from './ingress.js';
import { CLIENT_SERVICE, startRouter, type Backend } from './router.js';

const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const ingressFile = path.resolve(process.env.INGRESS_FILE ?? path.join(root, 'infra/k8s/ingress-srv.yaml'));
const port = Number(process.env.PORT ?? 3000);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  process.stderr.write(`ingress: PORT must be a port number, got "${process.env.PORT}"\n`);
  process.exit(1);
}

try {
  const backends: Record<string, Backend> = {};
  for (const { backend } of readIngress(ingressFile).locations) {
    // Websockets go to the client's Service only: Vite's dev server under the dev images (hot reload).
    const upgrades = backend === CLIENT_SERVICE;
    backends[backend] = { kind: 'proxy', url: `http://${backend}`, name: backend, upgrades };
  }
  const router = await startRouter({ ingressFile, backends, port, host: '0.0.0.0' });
  process.stdout.write(
    `ingress: routing ${router.url} by ${path.relative(root, ingressFile)} to ${Object.keys(backends).join(', ')}\n`,
  );
  const stop = () => void router.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
} catch (err) {
  process.stderr.write(`ingress: could not start: ${(err as Error).message}\n`);
  process.exit(1);
}
