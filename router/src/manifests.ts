/**
 * What the Deployments in infra/k8s say about their pods' readiness and stop, for each Service port: the
 * local router probes its endpoints by it (endpoints.ts), and the rolling-restart test waits the preStop
 * time by it, so neither can drift from the manifests. Read with the same YAML parser as ingress.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';
import type { ReadinessProbe } from './endpoints.js';

/** How a Service's pods are probed and stopped, as their Deployment says. */
export interface PodLifecycle {
  /** The Deployment the Service selects. */
  deployment: string;
  /** Its readinessProbe (httpGet); Kubernetes' defaults for what it leaves out. */
  readinessProbe: ReadinessProbe;
  /** The preStop hook's sleep (`sleep: {seconds}` or an exec of `sleep N`), 0 without one. */
  preStopMs: number;
  /** terminationGracePeriodSeconds, 30 s when left out. */
  terminationGraceMs: number;
}

interface Container {
  ports?: { containerPort?: number }[];
  readinessProbe?: {
    httpGet?: { path?: string; port?: number | string };
    periodSeconds?: number;
    timeoutSeconds?: number;
    failureThreshold?: number;
    successThreshold?: number;
  };
  lifecycle?: { preStop?: { sleep?: { seconds?: number }; exec?: { command?: string[] } } };
}

interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec?: { containers?: Container[]; terminationGracePeriodSeconds?: number };
}

interface Manifest {
  kind?: string;
  metadata?: { name?: string };
  spec?: {
    template?: PodTemplate;
    selector?: Record<string, string>;
    ports?: { port?: number; targetPort?: number | string }[];
  };
}

/** The seconds of `sleep N` in an exec hook (`["sleep", "5"]` or `["sh", "-c", "sleep 5"]`), or 0. */
function execSleepSeconds(command: string[] | undefined): number {
  const match = /(?:^|\s|;|&&)sleep\s+(\d+(?:\.\d+)?)\b/.exec((command ?? []).join(' '));
  return match ? Number(match[1]) : 0;
}

function lifecycleOf(deployment: string, container: Container, pod: PodTemplate): PodLifecycle {
  const probe = container.readinessProbe;
  const preStop = container.lifecycle?.preStop;
  const preStopSeconds = preStop?.sleep?.seconds ?? execSleepSeconds(preStop?.exec?.command);
  return {
    deployment,
    readinessProbe: {
      path: probe?.httpGet?.path ?? '/',
      periodMs: (probe?.periodSeconds ?? 10) * 1000,
      timeoutMs: (probe?.timeoutSeconds ?? 1) * 1000,
      failureThreshold: probe?.failureThreshold ?? 3,
      successThreshold: probe?.successThreshold ?? 1,
    },
    preStopMs: preStopSeconds * 1000,
    terminationGraceMs: (pod.spec?.terminationGracePeriodSeconds ?? 30) * 1000,
  };
}

/**
 * For each `service:port` of the manifests in `dir` whose pods have an httpGet readinessProbe: how they are
 * probed and stopped. A Service selects a Deployment by its pod labels, and a port by its targetPort.
 */
export function readPodLifecycles(dir: string): Record<string, PodLifecycle> {
  const manifests: Manifest[] = readdirSync(dir)
    .filter((file) => /\.ya?ml$/.test(file))
    .flatMap((file) =>
      parseAllDocuments(readFileSync(path.join(dir, file), 'utf8')).map((document) => {
        if (document.errors.length > 0) throw new Error(`${file}: ${document.errors[0]!.message}`);
        return (document.toJS() ?? {}) as Manifest;
      }),
    );
  const deployments = manifests.filter((manifest) => manifest.kind === 'Deployment');
  const lifecycles: Record<string, PodLifecycle> = {};
  for (const service of manifests.filter((manifest) => manifest.kind === 'Service')) {
    const selector = Object.entries(service.spec?.selector ?? {});
    if (selector.length === 0) continue;
    const deployment = deployments.find((candidate) => {
      const labels = candidate.spec?.template?.metadata?.labels ?? {};
      return selector.every(([key, value]) => labels[key] === value);
    });
    const pod = deployment?.spec?.template;
    for (const { port, targetPort } of service.spec?.ports ?? []) {
      const target = Number(targetPort ?? port);
      const container = pod?.spec?.containers?.find((candidate) =>
        (candidate.ports ?? []).some((containerPort) => containerPort.containerPort === target),
      );
      if (!pod || !container?.readinessProbe?.httpGet || port === undefined) continue;
      lifecycles[`${service.metadata?.name}:${port}`] = lifecycleOf(
        deployment?.metadata?.name ?? '?',
        container,
        pod,
      );
    }
  }
  return lifecycles;
}
