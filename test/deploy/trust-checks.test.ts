import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { clone, loadStack, ROOT, type Data, type K8sObject } from './support/files.js';
import {
  checkEventBusToken,
  checkNatsAuth,
  checkNetworkPolicies,
  checkTokenHook,
  flowMatrix,
} from './support/trust-checks.js';

// The trusted side as the manifests and skaffold.yaml deploy it: the token's Secret and who reads it.
const stack = loadStack();
const containerOf = (object: Data) => object.spec.template.spec.containers[0];

/** A copy of `objects` with the Deployment (or StatefulSet) `name` changed. */
function withDeployment(objects: K8sObject[], name: string, change: (deployment: Data) => void) {
  const copy = clone(objects);
  const target = copy.find(
    (o) => ['Deployment', 'StatefulSet'].includes(o.object.kind) && o.object.metadata.name === name,
  );
  if (!target) throw new Error(`no Deployment or StatefulSet ${name}`);
  change(target.object);
  return copy;
}

describe('EVENT_BUS_TOKEN in the manifests', () => {
  it('the real files: every Deployment of the event path reads the Secret, NATS requires it, the profile makes it', () => {
    expect(checkEventBusToken(stack.k8s)).toEqual([]);
    expect(checkEventBusToken(stack.natsProfile)).toEqual([]);
    expect(checkNatsAuth(stack.natsProfile)).toEqual([]);
    expect(checkTokenHook(stack.skaffold)).toEqual([]);
  });

  it('reports a Deployment without the Secret, one where it is required, one that sets the token itself', () => {
    let broken = withDeployment(stack.k8s, 'query-depl', (d) => {
      containerOf(d).envFrom = containerOf(d).envFrom.filter((e: Data) => !e.secretRef);
    });
    broken = withDeployment(broken, 'event-bus-depl', (d) => {
      containerOf(d).envFrom.find((e: Data) => e.secretRef).secretRef.optional = false;
    });
    broken = withDeployment(broken, 'posts-depl', (d) => {
      containerOf(d).env.push({ name: 'EVENT_BUS_TOKEN', value: 'written-in-the-manifest' });
    });
    expect(checkEventBusToken(broken)).toEqual([
      'Deployment posts-depl: sets EVENT_BUS_TOKEN itself',
      'Deployment query-depl: no envFrom Secret event-bus-token',
      'Deployment event-bus-depl: envFrom Secret event-bus-token is not optional',
    ]);
  });

  it('reports NATS open to anyone, with the token optional, or routes that need no token', () => {
    const open = withDeployment(stack.natsProfile, 'nats', (d) => {
      const args: string[] = containerOf(d).args;
      args.splice(args.indexOf('--auth'), 2);
    });
    expect(checkNatsAuth(open)).toEqual(['StatefulSet nats: not started with --auth $(EVENT_BUS_TOKEN)']);
    const optional = withDeployment(stack.natsProfile, 'nats', (d) => {
      containerOf(d).env.find((e: Data) => e.name === 'EVENT_BUS_TOKEN').valueFrom.secretKeyRef.optional =
        true;
    });
    expect(checkNatsAuth(optional)).toEqual(["StatefulSet nats: the token's Secret is optional"]);
    const openRoutes = withDeployment(stack.natsProfile, 'nats', (d) => {
      const args: string[] = containerOf(d).args;
      for (const flag of ['--cluster', '--routes'])
        args[args.indexOf(flag) + 1] = args[args.indexOf(flag) + 1]!.replaceAll(
          'route:$(EVENT_BUS_TOKEN)@',
          '',
        );
    });
    expect(checkNatsAuth(openRoutes)).toEqual([
      'StatefulSet nats: the route port (--cluster) does not require the token',
      'StatefulSet nats: a route (--routes) does not present the token',
    ]);
    const literal = withDeployment(stack.natsProfile, 'nats', (d) => {
      const env = containerOf(d).env;
      env.splice(
        env.findIndex((e: Data) => e.name === 'EVENT_BUS_TOKEN'),
        1,
        { name: 'EVENT_BUS_TOKEN', value: 'x' },
      );
    });
    expect(checkNatsAuth(literal)).toEqual([
      'StatefulSet nats: EVENT_BUS_TOKEN does not come from Secret event-bus-token, key EVENT_BUS_TOKEN',
    ]);
  });

  it('reports a profile without the hook for one system, and one that drops a top-level deploy setting', () => {
    const skaffold = clone(stack.skaffold);
    const nats = skaffold.profiles.find((p: Data) => p.name === 'nats');
    nats.deploy.kubectl.hooks.before = nats.deploy.kubectl.hooks.before.filter(
      (h: Data) => !h.host.os.includes('windows'),
    );
    skaffold.deploy.kubectl = { flags: { apply: ['--server-side'] } };
    expect(checkTokenHook(skaffold)).toEqual([
      'skaffold profile nats: deploy.kubectl drops the top-level flags',
      'skaffold profile nats: no before-deploy host hook for windows',
    ]);
  });
});

describe('the network policies', () => {
  it('let through exactly the flows the app needs, by default (infra/k8s)', () => {
    expect(flowMatrix(stack.k8s)).toEqual({
      'posts:4000': ['event-bus', 'ingress-nginx'],
      'comments:4001': ['event-bus', 'ingress-nginx'],
      'query:4002': ['event-bus', 'ingress-nginx'],
      'moderation:4003': ['event-bus'],
      'event-bus:4005': ['comments', 'moderation', 'posts', 'query'],
      'client:3000': ['ingress-nginx'],
    });
    expect(checkNetworkPolicies(stack.k8s)).toEqual([]);
  });

  it('let through exactly the flows the app needs with the nats profile, NATS from the five only', () => {
    expect(flowMatrix(stack.natsProfile)).toEqual({
      'nats:4222': ['comments', 'event-bus', 'moderation', 'posts', 'query'],
      'nats:6222': ['nats'],
      'nats:8222': [],
      'posts:4000': ['event-bus', 'ingress-nginx'],
      'comments:4001': ['event-bus', 'ingress-nginx'],
      'query:4002': ['event-bus', 'ingress-nginx'],
      'moderation:4003': ['event-bus'],
      'event-bus:4005': ['comments', 'moderation', 'posts', 'query'],
      'client:3000': ['ingress-nginx'],
    });
    expect(checkNetworkPolicies(stack.natsProfile)).toEqual([]);
  });

  it("are what docs/deploy.md's table of who may reach whom says", () => {
    const text = readFileSync(path.join(ROOT, 'docs/deploy.md'), 'utf8');
    const section = text.slice(
      text.indexOf('### Network policies'),
      text.indexOf('**Which clusters enforce them.**'),
    );
    const documented: Record<string, string[]> = {};
    for (const [, pod, port, peers] of section.matchAll(/^\| ([a-z-]+): (\d+) +\| ([^|]+?) +\|/gm)) {
      documented[`${pod}:${port}`] = peers!.startsWith('nobody') ? [] : peers!.split(', ').sort();
    }
    expect(Object.keys(documented)).toHaveLength(9);
    expect(documented).toEqual(flowMatrix(stack.natsProfile));
  });

  it('without them, everyone reaches everything: a NodePort from outside, any pod, the bus', () => {
    const none = stack.k8s.filter((o) => o.object.kind !== 'NetworkPolicy');
    expect(flowMatrix(none)['event-bus:4005']).toContain('outside the cluster');
    expect(flowMatrix(none)['posts:4000']).toContain('another pod of the namespace');
    const problems = checkNetworkPolicies(none);
    expect(problems).toContain('netpol: outside the cluster can reach posts:4000, which nothing needs');
    expect(problems).toContain('netpol: no default deny for app event-bus');
  });

  /** A copy of `objects` with the NetworkPolicy `name` changed. */
  const withPolicy = (objects: K8sObject[], name: string, change: (spec: Data) => void) => {
    const copy = clone(objects);
    const policy = copy.find((o) => o.object.kind === 'NetworkPolicy' && o.object.metadata.name === name);
    if (!policy) throw new Error(`no NetworkPolicy ${name}`);
    change(policy.object.spec);
    return copy;
  };

  it('reports a needed flow closed and an unneeded one opened', () => {
    const broken = withPolicy(stack.k8s, 'blog-allow-services-to-event-bus', (spec) => {
      spec.ingress[0].from[0].podSelector.matchExpressions[0].values = [
        'posts',
        'comments',
        'query',
        'client',
      ];
    });
    expect(checkNetworkPolicies(broken)).toEqual([
      'netpol: moderation cannot reach event-bus:4005',
      'netpol: client can reach event-bus:4005, which nothing needs',
    ]);
  });

  it('reports NATS open to the client and on its monitoring port, closed to the bus, or left without a policy', () => {
    const openRoutes = withPolicy(stack.natsProfile, 'blog-allow-nats-routes', (spec) => {
      delete spec.ingress[0].from;
    });
    expect(checkNetworkPolicies(openRoutes)).toContain(
      'netpol: another pod of the namespace can reach nats:6222, which nothing needs',
    );
    const noRoutes = stack.natsProfile.filter((o) => o.object.metadata?.name !== 'blog-allow-nats-routes');
    expect(checkNetworkPolicies(noRoutes)).toEqual(['netpol: nats cannot reach nats:6222']);
    const broken = withPolicy(stack.natsProfile, 'blog-allow-services-to-nats', (spec) => {
      spec.ingress[0].from[0].podSelector.matchExpressions[0].values = [
        'posts',
        'comments',
        'query',
        'moderation',
        'client',
      ];
      spec.ingress[0].ports.push({ protocol: 'TCP', port: 8222 });
    });
    const problems = checkNetworkPolicies(broken);
    expect(problems).toContain('netpol: event-bus cannot reach nats:4222');
    expect(problems).toContain('netpol: client can reach nats:4222, which nothing needs');
    expect(problems).toContain('netpol: posts can reach nats:8222, which nothing needs');
    const noPolicy = stack.natsProfile.filter(
      (o) => !['blog-allow-services-to-nats', 'blog-allow-nats-routes'].includes(o.object.metadata?.name),
    );
    expect(checkNetworkPolicies(noPolicy)).toContain(
      'netpol: outside the cluster can reach nats:4222, which nothing needs',
    );
  });

  it('reports an ingress-nginx rule that lets in its admission jobs, or that looks for it in the app’s namespace', () => {
    const anyComponent = withPolicy(stack.k8s, 'blog-allow-from-ingress-nginx', (spec) => {
      delete spec.ingress[0].from[0].podSelector.matchLabels['app.kubernetes.io/component'];
    });
    expect(checkNetworkPolicies(anyComponent)).toContain(
      'netpol: ingress-nginx admission job can reach client:3000, which nothing needs',
    );
    const ownNamespace = withPolicy(stack.k8s, 'blog-allow-from-ingress-nginx', (spec) => {
      delete spec.ingress[0].from[0].namespaceSelector;
    });
    expect(checkNetworkPolicies(ownNamespace)).toContain('netpol: ingress-nginx cannot reach client:3000');
  });

  it('reports a rule open to any source, or to a pod wearing the bus’s label in another namespace', () => {
    const anySource = withPolicy(stack.k8s, 'blog-allow-event-bus-to-services', (spec) => {
      delete spec.ingress[0].from;
    });
    expect(checkNetworkPolicies(anySource)).toContain(
      'netpol: outside the cluster can reach moderation:4003, which nothing needs',
    );
    const anyNamespace = withPolicy(stack.k8s, 'blog-allow-event-bus-to-services', (spec) => {
      spec.ingress[0].from[0].namespaceSelector = {};
    });
    expect(checkNetworkPolicies(anyNamespace)).toContain(
      'netpol: app: event-bus in another namespace can reach moderation:4003, which nothing needs',
    );
  });
});
