/**
 * The trusted side in the manifests (docs/reliability.md, "Trust and limits"): every Deployment of the event
 * path reads EVENT_BUS_TOKEN from the Secret event-bus-token, the NATS server of the `nats` profile always
 * requires it, and that profile makes the Secret when it is missing. Each checker returns its problems as
 * readable lines, as in checks.ts.
 */
import type { Data, K8sObject } from './files.js';
import { COURSE, NATS, TRANSPORT_APPS } from './checks.js';

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

/**
 * The NATS server requires the token: EVENT_BUS_TOKEN from the Secret's key, not optional (NATS never runs
 * open in the profile), and `--auth $(EVENT_BUS_TOKEN)` among its arguments, which Kubernetes expands from
 * the container's environment.
 */
export function checkNatsAuth(objects: K8sObject[]): string[] {
  const object = deployment(objects, NATS.deployment);
  if (!object) return [`no Deployment ${NATS.deployment}`];
  const problems: string[] = [];
  const container = containerOf(object);
  const variable = (container.env ?? []).find((e: Data) => e.name === TOKEN_SECRET.key);
  const ref = variable?.valueFrom?.secretKeyRef;
  if (!ref || ref.name !== TOKEN_SECRET.name || ref.key !== TOKEN_SECRET.key)
    problems.push(
      `${NATS.deployment}: ${TOKEN_SECRET.key} does not come from Secret ${TOKEN_SECRET.name}, key ${TOKEN_SECRET.key}`,
    );
  else if (ref.optional === true) problems.push(`${NATS.deployment}: the token's Secret is optional`);
  const args: string[] = (container.args ?? []).map(String);
  const auth = args.indexOf('--auth');
  if (auth < 0 || args[auth + 1] !== `$(${TOKEN_SECRET.key})`)
    problems.push(`${NATS.deployment}: not started with --auth $(${TOKEN_SECRET.key})`);
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
