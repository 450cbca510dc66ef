import { describe, expect, it } from 'vitest';
import { clone, loadStack, type Data, type K8sObject } from './support/files.js';
import { checkEventBusToken, checkNatsAuth, checkTokenHook } from './support/trust-checks.js';

// The trusted side as the manifests and skaffold.yaml deploy it: the token's Secret and who reads it.
const stack = loadStack();
const containerOf = (object: Data) => object.spec.template.spec.containers[0];

/** A copy of `objects` with the Deployment `name` changed. */
function withDeployment(objects: K8sObject[], name: string, change: (deployment: Data) => void) {
  const copy = clone(objects);
  const target = copy.find((o) => o.object.kind === 'Deployment' && o.object.metadata.name === name);
  if (!target) throw new Error(`no Deployment ${name}`);
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

  it('reports a NATS server open to anyone, or with the token optional', () => {
    const open = withDeployment(stack.natsProfile, 'nats-depl', (d) => {
      containerOf(d).args = containerOf(d).args.filter(
        (a: string) => !a.includes('auth') && !a.includes('$('),
      );
    });
    expect(checkNatsAuth(open)).toEqual(['nats-depl: not started with --auth $(EVENT_BUS_TOKEN)']);
    const optional = withDeployment(stack.natsProfile, 'nats-depl', (d) => {
      containerOf(d).env.find((e: Data) => e.name === 'EVENT_BUS_TOKEN').valueFrom.secretKeyRef.optional =
        true;
    });
    expect(checkNatsAuth(optional)).toEqual(["nats-depl: the token's Secret is optional"]);
    const literal = withDeployment(stack.natsProfile, 'nats-depl', (d) => {
      const env = containerOf(d).env;
      env.splice(
        env.findIndex((e: Data) => e.name === 'EVENT_BUS_TOKEN'),
        1,
        { name: 'EVENT_BUS_TOKEN', value: 'x' },
      );
    });
    expect(checkNatsAuth(literal)).toEqual([
      'nats-depl: EVENT_BUS_TOKEN does not come from Secret event-bus-token, key EVENT_BUS_TOKEN',
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
