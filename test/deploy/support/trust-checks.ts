/**
 * The trusted side in the manifests (docs/reliability.md, "Trust and limits"): every Deployment of the event
 * path reads EVENT_BUS_TOKEN from the Secret event-bus-token, the NATS server of the `nats` profile always
 * requires it, and that profile makes the Secret when it is missing. Each checker returns its problems as
 * readable lines, as in checks.ts.
 */
import type { Data, K8sObject, Stack } from './files.js';
import { COURSE, labelsMatch, NATS, TRANSPORT_APPS } from './checks.js';

/** The Secret the token comes from, and its one key (the variable's name). */
export const TOKEN_SECRET = { name: 'event-bus-token', key: 'EVENT_BUS_TOKEN' } as const;

const deployment = (objects: K8sObject[], name: string): Data | undefined =>
  objects.find((o) => o.object?.kind === 'Deployment' && o.object.metadata?.name === name)?.object;
const containerOf = (object: Data): Data => object?.spec?.template?.spec?.containers?.[0] ?? {};

/**
 * The five Deployments of the event path (the four services and the bus) take the token with `envFrom`
 * from the Secret, optional (without the Secret, nothing changes: the course's open bus), and none sets
 * EVENT_BUS_TOKEN itself.
 */
export function checkEventBusToken(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const app of TRANSPORT_APPS) {
    const name = COURSE[app].deployment;
    const object = deployment(objects, name);
    if (!object) {
      problems.push(`no Deployment ${name}`);
      continue;
    }
    const container = containerOf(object);
    const from = (container.envFrom ?? []).find((e: Data) => e.secretRef?.name === TOKEN_SECRET.name);
    if (!from) problems.push(`Deployment ${name}: no envFrom Secret ${TOKEN_SECRET.name}`);
    else if (from.secretRef.optional !== true)
      problems.push(`Deployment ${name}: envFrom Secret ${TOKEN_SECRET.name} is not optional`);
    if ((container.env ?? []).some((e: Data) => e.name === TOKEN_SECRET.key))
      problems.push(`Deployment ${name}: sets ${TOKEN_SECRET.key} itself`);
  }
  return problems;
}

/** A URL's password is the token, as Kubernetes expands it from the container's environment. */
const hasTokenPassword = (url: string) =>
  URL.canParse(url) && decodeURIComponent(new URL(url).password) === `$(${TOKEN_SECRET.key})`;

/**
 * The NATS nodes require the token: EVENT_BUS_TOKEN from the Secret's key, not optional (NATS never runs
 * open in the profile), `--auth $(EVENT_BUS_TOKEN)` for the clients, and the routes between the nodes
 * guarded by it too (the password of `--cluster`, which the server then requires, and of every `--routes`
 * URL): a pod that reached the route port without it could otherwise join the cluster and read everything.
 */
export function checkNatsAuth(objects: K8sObject[]): string[] {
  const name = `StatefulSet ${NATS.statefulSet}`;
  const object = objects.find(
    (o) => o.object?.kind === 'StatefulSet' && o.object.metadata?.name === NATS.statefulSet,
  )?.object;
  if (!object) return [`no ${name}`];
  const problems: string[] = [];
  const container = containerOf(object);
  const variable = (container.env ?? []).find((e: Data) => e.name === TOKEN_SECRET.key);
  const ref = variable?.valueFrom?.secretKeyRef;
  if (!ref || ref.name !== TOKEN_SECRET.name || ref.key !== TOKEN_SECRET.key)
    problems.push(
      `${name}: ${TOKEN_SECRET.key} does not come from Secret ${TOKEN_SECRET.name}, key ${TOKEN_SECRET.key}`,
    );
  else if (ref.optional === true) problems.push(`${name}: the token's Secret is optional`);
  const args: string[] = (container.args ?? []).map(String);
  const flag = (names: string[]) => args[args.findIndex((a) => names.includes(a)) + 1] ?? '';
  if (args.indexOf('--auth') < 0 || flag(['--auth']) !== `$(${TOKEN_SECRET.key})`)
    problems.push(`${name}: not started with --auth $(${TOKEN_SECRET.key})`);
  if (!hasTokenPassword(flag(['--cluster', '--cluster_listen'])))
    problems.push(`${name}: the route port (--cluster) does not require the token`);
  const routes = flag(['--routes']).split(',').filter(Boolean);
  if (routes.length === 0 || !routes.every(hasTokenPassword))
    problems.push(`${name}: a route (--routes) does not present the token`);
  return problems;
}

/** The operating systems skaffold runs on (its `runtime.GOOS` names), each needing a hook of its own. */
const HOOK_SYSTEMS = ['linux', 'darwin', 'windows'];

/**
 * The `nats` profile creates the Secret before it deploys, when it is missing: a host hook before the
 * deploy for every system skaffold runs on, each naming the Secret and its key; and the profile's
 * deploy.kubectl, which replaces the top-level one whole, drops nothing the top-level one sets.
 */
export function checkTokenHook(skaffold: Data): string[] {
  const problems: string[] = [];
  const profile = (skaffold?.profiles ?? []).find((p: Data) => p.name === 'nats');
  const kubectl = profile?.deploy?.kubectl;
  for (const key of Object.keys(skaffold?.deploy?.kubectl ?? {})) {
    if (JSON.stringify(kubectl?.[key]) !== JSON.stringify(skaffold.deploy.kubectl[key]))
      problems.push(`skaffold profile nats: deploy.kubectl drops the top-level ${key}`);
  }
  const hooks: Data[] = kubectl?.hooks?.before ?? [];
  for (const system of HOOK_SYSTEMS) {
    const hook = hooks.find((h) => (h.host?.os ?? []).includes(system))?.host;
    const text = (hook?.command ?? []).join(' ');
    if (!hook) problems.push(`skaffold profile nats: no before-deploy host hook for ${system}`);
    else if (!text.includes(`secret generic ${TOKEN_SECRET.name}`) || !text.includes(TOKEN_SECRET.key))
      problems.push(`skaffold profile nats: the ${system} hook does not create Secret ${TOKEN_SECRET.name}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------- policies

/** The namespace infra/k8s is applied to (its objects name none): the app's pods and their policies. */
const APP_NAMESPACE = 'default';

/** A pod that may try to reach the app's pods: where it runs and its labels, or a client outside. */
export interface Peer {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
}

/**
 * Everyone who may knock: each app's pods, ingress-nginx's controller and its admission jobs (same
 * namespace and name label, another component), a pod of the namespace that is none of the app's (`kubectl
 * run`), a pod elsewhere wearing the bus's label, and a client outside the cluster (through a NodePort).
 */
export const PEERS: Peer[] = [
  ...['posts', 'comments', 'query', 'moderation', 'event-bus', 'client', 'nats'].map((app) => ({
    name: app,
    namespace: APP_NAMESPACE,
    labels: { app },
  })),
  {
    name: 'ingress-nginx',
    namespace: 'ingress-nginx',
    labels: { 'app.kubernetes.io/name': 'ingress-nginx', 'app.kubernetes.io/component': 'controller' },
  },
  {
    name: 'ingress-nginx admission job',
    namespace: 'ingress-nginx',
    labels: { 'app.kubernetes.io/name': 'ingress-nginx', 'app.kubernetes.io/component': 'admission-webhook' },
  },
  { name: 'another pod of the namespace', namespace: APP_NAMESPACE, labels: { run: 'debug' } },
  { name: 'app: event-bus in another namespace', namespace: 'elsewhere', labels: { app: 'event-bus' } },
  { name: 'outside the cluster' },
];

/**
 * Who may reach whom on which port: the flows the app needs, and nothing else. Every container port of
 * every app pod is a row; the replicas of a service never call each other, the nodes of NATS route to
 * each other, and NATS's monitoring port is the kubelet's only (probes come from the node, which a
 * NetworkPolicy always lets in).
 */
export const NEEDED_FLOWS: Record<string, string[]> = {
  'posts:4000': ['event-bus', 'ingress-nginx'],
  'comments:4001': ['event-bus', 'ingress-nginx'],
  'query:4002': ['event-bus', 'ingress-nginx'],
  'moderation:4003': ['event-bus'],
  'event-bus:4005': ['comments', 'moderation', 'posts', 'query'],
  'client:3000': ['ingress-nginx'],
  'nats:4222': ['comments', 'event-bus', 'moderation', 'posts', 'query'],
  'nats:6222': ['nats'],
  'nats:8222': [],
};

/** A LabelSelector of the YAML (absent: everything, as an empty one). */
const selects = (selector: Data, labels: Record<string, string> = {}) => labelsMatch(selector ?? {}, labels);

/** Whether one `from` entry of a rule admits `peer`. An ipBlock is taken to admit anyone. */
function admits(entry: Data, peer: Peer): boolean {
  if (entry.ipBlock) return true;
  if (peer.namespace === undefined) return false; // outside: only an ipBlock lets it in
  const namespaceOk = entry.namespaceSelector
    ? selects(entry.namespaceSelector, { 'kubernetes.io/metadata.name': peer.namespace })
    : peer.namespace === APP_NAMESPACE;
  return namespaceOk && (!entry.podSelector || selects(entry.podSelector, peer.labels));
}

/** The app's pods (Deployments' and StatefulSets' templates) with their container ports, by number and name. */
function appPods(objects: K8sObject[]) {
  return objects
    .filter((o) => ['Deployment', 'StatefulSet'].includes(o.object?.kind))
    .map(({ object }) => ({
      labels: (object.spec?.template?.metadata?.labels ?? {}) as Record<string, string>,
      ports: (object.spec?.template?.spec?.containers ?? []).flatMap((c: Data) =>
        (c.ports ?? []).map((p: Data) => ({ number: Number(p.containerPort), name: p.name as string })),
      ) as { number: number; name?: string }[],
    }));
}

const policiesOf = (objects: K8sObject[]): Data[] =>
  objects.filter((o) => o.object?.kind === 'NetworkPolicy').map((o) => o.object);

/** Whether the policies let `peer` reach `port` of a pod with `labels` (a pod no policy selects: anyone). */
function reaches(
  policies: Data[],
  labels: Record<string, string>,
  port: { number: number; name?: string },
  peer: Peer,
) {
  const selecting = policies.filter(
    (p) => selects(p.spec?.podSelector, labels) && (p.spec?.policyTypes ?? ['Ingress']).includes('Ingress'),
  );
  if (selecting.length === 0) return true;
  return selecting.some((policy) =>
    (policy.spec?.ingress ?? []).some((rule: Data) => {
      const portOk =
        !rule.ports?.length ||
        rule.ports.some(
          (p: Data) =>
            (p.protocol ?? 'TCP') === 'TCP' &&
            (p.port === undefined ||
              p.port === port.name ||
              (Number(p.port) <= port.number && port.number <= Number(p.endPort ?? p.port))),
        );
      return portOk && (!rule.from?.length || rule.from.some((entry: Data) => admits(entry, peer)));
    }),
  );
}

/**
 * `app:port` → the peers (PEERS) that may reach it, sorted: the flow matrix. A pod's own app is a peer too
 * (another replica, another node of the cluster); a pod reaching itself is never subject to a policy.
 */
export function flowMatrix(objects: K8sObject[]): Record<string, string[]> {
  const policies = policiesOf(objects);
  const matrix: Record<string, string[]> = {};
  for (const pod of appPods(objects)) {
    for (const port of pod.ports) {
      matrix[`${pod.labels.app}:${port.number}`] = PEERS.filter((peer) =>
        reaches(policies, pod.labels, port, peer),
      )
        .map((peer) => peer.name)
        .sort();
    }
  }
  return matrix;
}

/**
 * The flows the app needs are open and every other one closed (NEEDED_FLOWS, for every pod the objects
 * deploy), and each app pod of infra/k8s is under a policy that lets nothing in (a default deny), so that
 * losing an allow policy closes a flow rather than opening everything.
 */
export function checkNetworkPolicies(objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const [target, peers] of Object.entries(flowMatrix(objects))) {
    const needed = NEEDED_FLOWS[target] ?? [];
    for (const peer of needed)
      if (!peers.includes(peer)) problems.push(`netpol: ${peer} cannot reach ${target}`);
    for (const peer of peers)
      if (!needed.includes(peer)) problems.push(`netpol: ${peer} can reach ${target}, which nothing needs`);
  }
  const denies = policiesOf(objects).filter((p) => (p.spec?.ingress ?? []).length === 0);
  for (const pod of appPods(objects)) {
    if (pod.labels.app !== 'nats' && !denies.some((p) => selects(p.spec?.podSelector, pod.labels)))
      problems.push(`netpol: no default deny for app ${pod.labels.app}`);
  }
  return problems;
}

/** Every check of this file on the real files: the default deploy, and the `nats` profile as a whole. */
export function checkTrust(stack: Stack): string[] {
  return [
    ...checkNetworkPolicies(stack.k8s),
    ...checkNetworkPolicies(stack.natsProfile),
    ...checkEventBusToken(stack.k8s),
    ...checkEventBusToken(stack.natsProfile),
    ...checkNatsAuth(stack.natsProfile),
    ...checkTokenHook(stack.skaffold),
  ];
}
