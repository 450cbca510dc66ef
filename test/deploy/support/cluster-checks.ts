/**
 * The checks of scaling out: the NATS cluster of the `nats` profile (a StatefulSet, its headless Service,
 * a claim per node, its configuration), the replicas and disruption budgets of each deploy, the rolling
 * updates, the event bus as a gateway, and the profile's manifests (infra/kustomization.yaml). Each checker
 * returns its problems as readable lines, as in checks.ts.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Data, K8sObject } from './files.js';
import { manifestFiles, profileManifests, ROOT } from './files.js';
import { COURSE, kindOf, labelsMatch, named, NATS, nodeHost, TRANSPORT_CONFIG } from './checks.js';

/** A container port by number or by name. */
function resolvePort(container: Data, port: number | string | undefined): number | undefined {
  if (typeof port === 'number') return port;
  return (container?.ports ?? []).find((p: Data) => p.name === port)?.containerPort;
}

/** The value after a command-line flag (`-c /etc/nats/nats.conf`, `--config=/etc/nats/nats.conf`). */
export function flagValue(args: string[], names: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (names.includes(arg)) return args[i + 1];
    const eq = names.find((name) => arg.startsWith(`${name}=`));
    if (eq) return arg.slice(eq.length + 1);
  }
  return undefined;
}

/**
 * The settings of a NATS configuration file, as `block.key` → value (`jetstream.store_dir`, `port`): the
 * part of the format this project writes, `key: value` lines and `name { ... }` blocks, `#` comments.
 */
export function natsSettings(text: string): Record<string, string> {
  const settings: Record<string, string> = {};
  const blocks: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*$/, '').trim();
    const open = /^([\w-]+)\s*[:=]?\s*\{$/.exec(line);
    if (open) blocks.push(open[1]!);
    else if (line === '}') blocks.pop();
    else {
      const setting = /^([\w-]+)\s*[:=]\s*(.+)$/.exec(line);
      if (setting) settings[[...blocks, setting[1]].join('.')] = setting[2]!.replace(/^['"]|['"]$/g, '');
    }
  }
  return settings;
}

const containerOf = (object: Data): Data => object?.spec?.template?.spec?.containers?.[0] ?? {};

/** The server's configuration file: `--config` names a key of a ConfigMap mounted in the container. */
function natsConfigText(objects: K8sObject[], set: Data): string | undefined {
  const container = containerOf(set);
  const file = flagValue((container.args ?? []).map(String), ['-c', '--config']);
  if (!file) return undefined;
  const mount = (container.volumeMounts ?? []).find((m: Data) => path.posix.dirname(file) === m.mountPath);
  const volume = (set.spec?.template?.spec?.volumes ?? []).find((v: Data) => v.name === mount?.name);
  const map = named(objects, 'ConfigMap', volume?.configMap?.name ?? '')?.object;
  return map?.data?.[path.posix.basename(file)];
}

/** The headless Service of the StatefulSet: every pod a DNS name, published before the pod is ready. */
function checkHeadless(objects: K8sObject[], set: Data): string[] {
  const problems: string[] = [];
  const name = set.spec?.serviceName;
  const service = named(objects, 'Service', name ?? '')?.object;
  if (!service) return [`StatefulSet ${NATS.statefulSet}: serviceName ${name} is not a Service`];
  const where = `Service ${name}`;
  if (name !== NATS.headless)
    problems.push(`StatefulSet ${NATS.statefulSet}: serviceName is not ${NATS.headless}`);
  if (service.spec?.clusterIP !== 'None') problems.push(`${where}: not headless (clusterIP: None)`);
  if (service.spec?.publishNotReadyAddresses !== true)
    problems.push(`${where}: no publishNotReadyAddresses (a node must find the others before it is ready)`);
  if (!labelsMatch({ matchLabels: service.spec?.selector ?? {} }, set.spec?.template?.metadata?.labels))
    problems.push(`${where}: does not select the StatefulSet's pods`);
  return problems;
}

/** A Service's ports go to the container ports of the same numbers. */
function checkServicePorts(where: string, service: Data, container: Data, ports: number[]): string[] {
  return ports.flatMap((port) => {
    const entry = (service?.spec?.ports ?? []).find((p: Data) => p.port === port);
    if (!entry) return [`${where}: no port ${port}`];
    if (resolvePort(container, entry.targetPort ?? entry.port) !== port)
      return [`${where}: port ${port} goes to container port ${entry.targetPort}`];
    return [];
  });
}

/** The JetStream store: `jetstream.store_dir` mounted from a claim of the StatefulSet's volumeClaimTemplates. */
function checkStore(set: Data, settings: Record<string, string>): string[] {
  const name = `StatefulSet ${NATS.statefulSet}`;
  const store = settings['jetstream.store_dir'];
  if (!store) return [`${name}: JetStream is off, or has no store_dir`];
  const mount = (containerOf(set).volumeMounts ?? []).find((m: Data) => m.mountPath === store);
  const claim = (set.spec?.volumeClaimTemplates ?? []).find((c: Data) => c.metadata?.name === mount?.name);
  if (!claim) return [`${name}: the store (${store}) is not on a claim of its volumeClaimTemplates`];
  const problems: string[] = [];
  if (!(claim.spec?.accessModes ?? []).includes('ReadWriteOnce'))
    problems.push(`${name}: the store's claim is not ReadWriteOnce`);
  if (!claim.spec?.resources?.requests?.storage) problems.push(`${name}: the store's claim asks no storage`);
  return problems;
}

/** The cluster: a name, the route port listened on, and routes to every node, itself included. */
function checkRoutes(set: Data, settings: Record<string, string>): string[] {
  const name = `StatefulSet ${NATS.statefulSet}`;
  const problems: string[] = [];
  const args = (containerOf(set).args ?? []).map(String);
  if (!settings['cluster.name']) problems.push(`${name}: the cluster has no name`);
  const listen = flagValue(args, ['--cluster', '--cluster_listen']) ?? '';
  if (!listen.endsWith(`:${NATS.cluster}`))
    problems.push(`${name}: --cluster does not listen on ${NATS.cluster}`);
  const routes = (flagValue(args, ['--routes', '-routes']) ?? '').split(',').map((url) => {
    const parsed = URL.canParse(url) ? new URL(url) : undefined;
    return parsed ? `${parsed.hostname}:${parsed.port}` : url;
  });
  const expected = Array.from(
    { length: set.spec?.replicas ?? 0 },
    (_, i) => `${nodeHost(i)}:${NATS.cluster}`,
  );
  if (JSON.stringify(routes) !== JSON.stringify(expected))
    problems.push(`${name}: --routes ${routes.join(',')}, expected ${expected.join(',')}`);
  return problems;
}

/** server_name is the pod's name: `$VAR`, VAR from the pod's metadata.name. */
function checkServerName(set: Data, settings: Record<string, string>): string[] {
  const variable = /^\$(\w+)$/.exec(settings.server_name ?? '')?.[1];
  const env = (containerOf(set).env ?? []).find((e: Data) => e.name === variable);
  if (!variable || env?.valueFrom?.fieldRef?.fieldPath !== 'metadata.name')
    return [`StatefulSet ${NATS.statefulSet}: server_name is not the pod's name`];
  return [];
}

/**
 * The NATS cluster: a StatefulSet of three nodes started in parallel, the official image at a pinned
 * release, its configuration from a ConfigMap (server_name the pod's name, JetStream's store on the pod's
 * own claim, a named cluster with routes to every node), the client, route and monitoring ports, probes on
 * the monitoring port, its headless Service, and the ClusterIP Service nats-srv.
 */
export function checkNats(objects: K8sObject[]): string[] {
  const set = named(objects, 'StatefulSet', NATS.statefulSet)?.object;
  if (!set) return [`no StatefulSet ${NATS.statefulSet}`];
  const name = `StatefulSet ${NATS.statefulSet}`;
  const problems: string[] = [];
  if (set.spec?.replicas !== NATS.nodes)
    problems.push(`${name}: replicas ${set.spec?.replicas}, expected ${NATS.nodes}`);
  if (set.spec?.podManagementPolicy !== 'Parallel')
    problems.push(`${name}: podManagementPolicy is not Parallel (each node would wait for the previous one)`);
  if (set.spec?.template?.spec?.securityContext?.fsGroup !== 1000)
    problems.push(`${name}: fsGroup is not 1000`);
  const container = containerOf(set);
  if (!/^nats:\d+\.\d+\.\d+-alpine$/.test(container.image ?? ''))
    problems.push(`${name}: image ${container.image} is not the official nats:<x.y.z>-alpine`);
  if (container.command) problems.push(`${name}: a command replaces the image's entrypoint`);
  const text = natsConfigText(objects, set);
  if (text === undefined) problems.push(`${name}: --config is not a file of a ConfigMap mounted in the pod`);
  const settings = natsSettings(text ?? '');
  problems.push(
    ...checkServerName(set, settings),
    ...checkStore(set, settings),
    ...checkRoutes(set, settings),
  );
  const ports = (container.ports ?? []).map((p: Data) => p.containerPort);
  const listened = {
    client: Number(settings.port ?? NATS.client),
    monitor: Number(settings.http_port ?? settings.monitor_port),
  };
  for (const [role, port] of Object.entries(listened)) {
    const expected = NATS[role as 'client' | 'monitor'];
    if (port !== expected || !ports.includes(port))
      problems.push(`${name}: ${role} port ${port || 'off'}, expected containerPort ${expected}`);
  }
  if (!ports.includes(NATS.cluster))
    problems.push(`${name}: no containerPort ${NATS.cluster} for the routes`);
  for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
    const port = resolvePort(container, container[probe]?.httpGet?.port);
    if (port !== NATS.monitor) problems.push(`${name}: ${probe} asks port ${port}, not the monitoring port`);
  }
  problems.push(...checkHeadless(objects, set));
  const headless = named(objects, 'Service', NATS.headless)?.object;
  if (headless)
    problems.push(
      ...checkServicePorts(`Service ${NATS.headless}`, headless, container, [NATS.client, NATS.cluster]),
    );
  const service = named(objects, 'Service', NATS.service)?.object;
  if (!service) problems.push(`no Service ${NATS.service}`);
  else {
    if ((service.spec?.type ?? 'ClusterIP') !== 'ClusterIP')
      problems.push(`Service ${NATS.service}: not ClusterIP`);
    problems.push(
      ...checkServicePorts(`Service ${NATS.service}`, service, container, [NATS.client, NATS.monitor]),
    );
  }
  return problems;
}

/**
 * The clients of the cluster (the ConfigMap event-transport of the profile): NATS_URL names every node,
 * once, so a client starts on any that answers; NATS_REPLICAS keeps the stream on every node.
 */
export function checkNatsClients(objects: K8sObject[]): string[] {
  const data = named(objects, 'ConfigMap', TRANSPORT_CONFIG)?.object?.data ?? {};
  const set = named(objects, 'StatefulSet', NATS.statefulSet)?.object;
  const nodes = Number(set?.spec?.replicas ?? 0);
  const problems: string[] = [];
  const expected = Array.from({ length: nodes }, (_, i) => `nats://${nodeHost(i)}:${NATS.client}`);
  const urls = String(data.NATS_URL ?? '')
    .split(',')
    .map((u) => u.trim());
  if (JSON.stringify(urls) !== JSON.stringify(expected))
    problems.push(`ConfigMap ${TRANSPORT_CONFIG}: NATS_URL ${data.NATS_URL}, expected ${expected.join(',')}`);
  if (String(data.NATS_REPLICAS) !== String(nodes))
    problems.push(
      `ConfigMap ${TRANSPORT_CONFIG}: NATS_REPLICAS ${data.NATS_REPLICAS}, expected ${nodes} (one copy per node)`,
    );
  return problems;
}

/** The Deployments and StatefulSets of `objects`, with a name for messages. */
function workloads(objects: K8sObject[]): { name: string; object: Data }[] {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet'].includes(o.object?.kind))
    .map(({ object }) => ({ name: `${object.kind} ${object.metadata?.name}`, object }));
}

/**
 * Replicas and disruption budgets. `http`: one pod of every Deployment (the HTTP bus delivers each event to
 * one pod of a Service, so a second pod would miss half of them) and no budget. `nats`: two pods of every
 * Deployment and the nodes of the StatefulSet, each workload under exactly one budget that lets one pod go
 * at a time; no budget selects nothing.
 */
export function checkReplicas(objects: K8sObject[], transport: 'http' | 'nats'): string[] {
  const problems: string[] = [];
  const budgets = kindOf(objects, 'PodDisruptionBudget').map((o) => o.object);
  const expected = transport === 'http' ? 1 : 2;
  for (const { name, object } of workloads(objects)) {
    const replicas = object.spec?.replicas ?? 1;
    if (object.kind === 'Deployment' && replicas !== expected)
      problems.push(`${name}: replicas ${replicas}, expected ${expected}`);
    const labels = object.spec?.template?.metadata?.labels;
    const mine = budgets.filter((b) => labelsMatch(b.spec?.selector, labels));
    if (transport === 'http') {
      if (mine.length > 0) problems.push(`${name}: a PodDisruptionBudget for a single pod`);
      continue;
    }
    if (mine.length !== 1) problems.push(`${name}: ${mine.length} PodDisruptionBudgets, expected one`);
    for (const budget of mine) {
      const { maxUnavailable, minAvailable } = budget.spec ?? {};
      if (!(maxUnavailable === 1 || (minAvailable === 1 && maxUnavailable === undefined)))
        problems.push(
          `PodDisruptionBudget ${budget.metadata?.name}: not maxUnavailable 1 (or minAvailable 1)`,
        );
    }
  }
  for (const budget of budgets) {
    if (
      !workloads(objects).some(({ object }) =>
        labelsMatch(budget.spec?.selector, object.spec?.template?.metadata?.labels),
      )
    )
      problems.push(`PodDisruptionBudget ${budget.metadata?.name}: selects no pod`);
  }
  return problems;
}

/** The least a service gets between SIGTERM and SIGKILL to finish what it has in flight. */
export const DRAIN_SECONDS = 10;

/**
 * Rolling updates: every Deployment starts a new pod and waits until it is ready before stopping an old
 * one (maxUnavailable 0, maxSurge 1), but the HTTP bus (Recreate: one writer of its claim); every pod
 * sleeps in a preStop hook while the endpoints drop it (busybox's `sleep`: the images are alpine), and its
 * grace period covers that sleep and a drain of DRAIN_SECONDS at least.
 */
export function checkRollingUpdates(objects: K8sObject[], transport: 'http' | 'nats'): string[] {
  const problems: string[] = [];
  for (const { object } of kindOf(objects, 'Deployment')) {
    const name = `Deployment ${object.metadata?.name}`;
    const strategy = object.spec?.strategy ?? {};
    if (transport === 'http' && object.metadata?.name === COURSE['event-bus'].deployment) {
      if (strategy.type !== 'Recreate') problems.push(`${name}: strategy is not Recreate`);
    } else if (
      strategy.type !== 'RollingUpdate' ||
      strategy.rollingUpdate?.maxUnavailable !== 0 ||
      strategy.rollingUpdate?.maxSurge !== 1
    )
      problems.push(`${name}: strategy is not RollingUpdate with maxUnavailable 0, maxSurge 1`);
    const command: string[] = (containerOf(object).lifecycle?.preStop?.exec?.command ?? []).map(String);
    const sleep = command[0] === 'sleep' && command.length === 2 ? Number(command[1]) : NaN;
    if (!(sleep > 0)) problems.push(`${name}: no preStop sleep`);
    const grace = object.spec?.template?.spec?.terminationGracePeriodSeconds ?? 30;
    if (sleep > 0 && grace < sleep + DRAIN_SECONDS)
      problems.push(
        `${name}: terminationGracePeriodSeconds ${grace} leaves less than ${DRAIN_SECONDS} s after the preStop sleep`,
      );
  }
  return problems;
}

/**
 * The event bus on NATS is a stateless gateway: no claim mounted (two pods on two nodes could not share a
 * ReadWriteOnce claim, and it writes nothing), and no claim applied that no pod uses.
 */
export function checkEventBusGateway(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  const bus = named(objects, 'Deployment', COURSE['event-bus'].deployment)?.object;
  if (!bus) return [`no Deployment ${COURSE['event-bus'].deployment}`];
  const claims = (bus.spec?.template?.spec?.volumes ?? []).filter((v: Data) => v.persistentVolumeClaim);
  for (const volume of claims)
    problems.push(
      `${COURSE['event-bus'].deployment}: mounts the claim ${volume.persistentVolumeClaim.claimName}`,
    );
  const used = workloads(objects).flatMap(({ object }) =>
    (object.spec?.template?.spec?.volumes ?? []).map((v: Data) => v.persistentVolumeClaim?.claimName),
  );
  for (const { object } of kindOf(objects, 'PersistentVolumeClaim')) {
    if (!used.includes(object.metadata?.name))
      problems.push(`PersistentVolumeClaim ${object.metadata?.name}: no pod uses it`);
  }
  return problems;
}

/** The kustomization the `nats` profile renders. */
export const NATS_KUSTOMIZATION = 'infra/kustomization.yaml';

/**
 * The `nats` profile of skaffold.yaml: its own manifests, patches and deploy hook only (so `-p
 * production,nats` combines the two); it renders infra/kustomization.yaml and nothing else (the top-level
 * `rawYaml` removed, since skaffold would otherwise apply it beside), and that kustomization takes every
 * file of infra/nats/ and of infra/k8s/ but the `http` ConfigMap's.
 */
export function checkNatsProfile(skaffold: Data, kustomization: Data): string[] {
  const profile = (skaffold?.profiles ?? []).find((p: Data) => p.name === 'nats');
  if (!profile) return ['skaffold: no profile nats'];
  const problems: string[] = [];
  for (const key of Object.keys(profile)) {
    // `deploy`: the hook that makes the token's Secret (trust-checks.ts checks it).
    if (!['name', 'manifests', 'patches', 'deploy'].includes(key))
      problems.push(`skaffold profile nats: sets ${key}`);
  }
  let manifests: Data = {};
  try {
    manifests = profileManifests(skaffold, 'nats');
  } catch (error) {
    problems.push(String((error as Error).message));
  }
  if (manifests.rawYaml) problems.push(`skaffold profile nats: applies ${manifests.rawYaml.join(', ')} too`);
  const dir = path.posix.dirname(NATS_KUSTOMIZATION);
  if (JSON.stringify(manifests.kustomize?.paths) !== JSON.stringify([`./${dir}`]))
    problems.push(`skaffold profile nats: kustomize.paths is not [./${dir}]`);
  const resources: string[] = (kustomization?.resources ?? []).map((r: string) => path.posix.join(dir, r));
  const expected = [
    ...manifestFiles('infra/nats'),
    ...manifestFiles('infra/k8s').filter((file) => file !== `infra/k8s/${TRANSPORT_CONFIG}.yaml`),
  ];
  for (const file of resources) {
    if (!existsSync(path.join(ROOT, file))) problems.push(`${NATS_KUSTOMIZATION}: ${file} is no file`);
    else if (!expected.includes(file)) problems.push(`${NATS_KUSTOMIZATION}: applies ${file}`);
  }
  for (const file of expected) {
    if (!resources.includes(file)) problems.push(`${NATS_KUSTOMIZATION}: does not apply ${file}`);
  }
  return problems;
}
