/**
 * A Deployment of infra/k8s run as one `docker run`, with the settings read from the manifest rather than
 * copied by hand, so the container test and the cluster cannot drift: the user and group, the read-only
 * root, the dropped capabilities and no privilege escalation, the volumes (an emptyDir is a tmpfs, a
 * PersistentVolumeClaim a named volume), `env` over `envFrom`'s ConfigMap, the CPU and memory limits, the
 * container port and the readiness probe. The container answers on the network under the name of every
 * Service that selects its pod, as a cluster's DNS would.
 *
 * Not reproduced: seccomp (Docker's default profile is the runtime default), probes run by a kubelet
 * (the test polls the readiness path itself), fsGroup (the image's /data is already the user's).
 */
import type { Data, K8sObject } from './files.js';

export interface PodRun {
  deployment: string;
  /** The container's image, as the manifest names it (`blog/posts:0.0.1`). */
  image: string;
  port: number;
  readiness: { path: string; port: number; timeoutMs: number };
  /** The Services selecting the pod: its names on the network. */
  aliases: string[];
  /** `docker run` options, without the image and the network. */
  options: string[];
}

/** `512Mi` → `512m`, `1Gi` → `1g`: Docker's units for a Kubernetes memory quantity. */
export function dockerMemory(quantity: string): string {
  const match = /^(\d+)(Ki|Mi|Gi)?$/.exec(quantity);
  if (!match) throw new Error(`memory quantity ${quantity} is not read here`);
  const unit = { Ki: 'k', Mi: 'm', Gi: 'g' }[match[2] as 'Ki' | 'Mi' | 'Gi'] ?? 'b';
  return `${match[1]}${unit}`;
}

/** `1` → `1`, `500m` → `0.5`: Docker's --cpus for a Kubernetes CPU quantity. */
export function dockerCpus(quantity: string | number): string {
  const text = String(quantity);
  return text.endsWith('m') ? String(Number(text.slice(0, -1)) / 1000) : text;
}

const matches = (selector: Record<string, string>, labels: Record<string, string>) =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);

/** How the cluster would run the one container of `deploymentName`, from the objects of infra/k8s. */
export function podRun(objects: K8sObject[], deploymentName: string, volumePrefix: string): PodRun {
  const of = (kind: string) => objects.map((o) => o.object as Data).filter((o) => o?.kind === kind);
  const deployment = of('Deployment').find((d) => d.metadata?.name === deploymentName);
  if (!deployment) throw new Error(`no Deployment ${deploymentName}`);
  const pod = deployment.spec.template.spec;
  const labels: Record<string, string> = deployment.spec.template.metadata.labels;
  if (pod.containers.length !== 1) throw new Error(`${deploymentName}: one container per pod is read here`);
  const container = pod.containers[0];
  const security = { ...pod.securityContext, ...container.securityContext };
  const options = ['--user', `${security.runAsUser}:${security.runAsGroup ?? security.runAsUser}`];
  if (security.readOnlyRootFilesystem) options.push('--read-only');
  for (const capability of security.capabilities?.drop ?? []) options.push('--cap-drop', capability);
  for (const capability of security.capabilities?.add ?? []) options.push('--cap-add', capability);
  if (security.allowPrivilegeEscalation === false) options.push('--security-opt', 'no-new-privileges');

  for (const mount of container.volumeMounts ?? []) {
    const volume = (pod.volumes ?? []).find((v: Data) => v.name === mount.name);
    if (volume?.emptyDir) options.push('--tmpfs', `${mount.mountPath}:exec,mode=1777`);
    else if (volume?.persistentVolumeClaim)
      options.push(
        '--mount',
        `type=volume,source=${volumePrefix}-${volume.persistentVolumeClaim.claimName},target=${mount.mountPath}`,
      );
    else throw new Error(`${deploymentName}: volume ${mount.name} is of a kind not read here`);
  }

  // envFrom first, then env, which wins (as in Kubernetes).
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    // A Secret (the token's) is made in the cluster, never in the manifests: an optional one adds nothing,
    // as in a cluster without it.
    const [kind, ref] = source.secretRef ? ['Secret', source.secretRef] : ['ConfigMap', source.configMapRef];
    const found = of(kind).find((c) => c.metadata?.name === ref?.name);
    if (!found && !ref?.optional) throw new Error(`${deploymentName}: no ${kind} ${ref?.name}`);
    if (kind === 'Secret' && found)
      throw new Error(`${deploymentName}: a Secret in the manifests is not read here`);
    Object.assign(env, found?.data ?? {});
  }
  for (const variable of container.env ?? []) {
    if (variable.valueFrom)
      throw new Error(`${deploymentName}: ${variable.name} from valueFrom is not read here`);
    env[variable.name] = String(variable.value);
  }
  for (const [name, value] of Object.entries(env)) options.push('-e', `${name}=${value}`);

  const limits = container.resources?.limits ?? {};
  if (limits.memory) options.push('--memory', dockerMemory(String(limits.memory)));
  if (limits.cpu) options.push('--cpus', dockerCpus(limits.cpu));

  const aliases: string[] = [];
  for (const service of of('Service')) {
    if (!matches(service.spec?.selector ?? {}, labels)) continue;
    for (const port of service.spec.ports) {
      // A network alias answers on the container's own ports: a Service that remaps one cannot be run so.
      if ((port.targetPort ?? port.port) !== port.port)
        throw new Error(
          `${service.metadata.name}: port ${port.port} → ${port.targetPort} is not reproduced here`,
        );
    }
    aliases.push(service.metadata.name);
  }

  const probe = container.readinessProbe?.httpGet;
  if (!probe) throw new Error(`${deploymentName}: no HTTP readiness probe`);
  return {
    deployment: deploymentName,
    image: container.image,
    port: container.ports[0].containerPort,
    readiness: {
      path: probe.path,
      port: Number(probe.port),
      timeoutMs: (container.readinessProbe.timeoutSeconds ?? 1) * 1000,
    },
    aliases,
    options,
  };
}
