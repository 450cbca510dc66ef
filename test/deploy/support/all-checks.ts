/** Every checker of checks.ts and cluster-checks.ts on the real files, for each deploy. */
import type { Stack } from './files.js';
import {
  APP_PROBES,
  checkCompose,
  checkCourseObjects,
  checkEnvUrls,
  checkEventBusStorage,
  checkHardening,
  checkIngress,
  checkLessons,
  checkSkaffold,
  checkTransport,
  checkTransportCode,
  checkWorkloads,
  NATS_PROBES,
} from './checks.js';
import {
  checkEventBusGateway,
  checkNats,
  checkNatsClients,
  checkNatsProfile,
  checkReplicas,
  checkRollingUpdates,
} from './cluster-checks.js';

/**
 * Everything on the real files. `documented`: docs/event-bus.md's table of transport variables, which the
 * code must read; `designed`: the variables its design for scaling out names, which the manifests may set
 * too.
 */
export function checkAll(
  stack: Stack,
  codeDefaults: { eventBusUrl: string; subscribers: string },
  documented: Record<string, string>,
  designed: Record<string, string>,
  sources: { file: string; text: string }[],
): string[] {
  const variables = { ...designed, ...documented };
  const natsDeployments = stack.natsProfile.filter((o) => o.object?.kind === 'Deployment');
  return [
    ...checkCourseObjects(stack.k8s),
    ...checkWorkloads(stack.k8s),
    ...checkIngress(stack.k8s),
    ...checkEnvUrls(stack.k8s, codeDefaults),
    ...checkSkaffold(stack.skaffold, stack.k8s),
    ...checkCompose(stack.compose, stack.k8s),
    ...checkHardening(stack.k8s, { probes: APP_PROBES }),
    ...checkLessons(stack.lessons),
    ...checkEventBusStorage(stack.k8s),
    ...checkReplicas(stack.k8s, 'http'),
    ...checkRollingUpdates(stack.k8s, 'http'),
    ...checkTransport(stack.k8s, 'http', variables),
    // The `nats` profile: what it applies, as a whole, as kustomize renders it.
    ...checkNatsProfile(stack.skaffold, stack.kustomization),
    ...checkCourseObjects(stack.natsProfile),
    ...checkWorkloads(stack.natsProfile),
    ...checkIngress(stack.natsProfile),
    ...checkEnvUrls(stack.natsProfile, codeDefaults),
    ...checkHardening(natsDeployments, { probes: APP_PROBES }),
    ...checkHardening(stack.nats, { probes: NATS_PROBES }),
    ...checkReplicas(stack.natsProfile, 'nats'),
    ...checkRollingUpdates(stack.natsProfile, 'nats'),
    ...checkEventBusGateway(stack.natsProfile),
    ...checkNats(stack.natsProfile),
    ...checkNatsClients(stack.natsProfile),
    ...checkTransport(stack.natsProfile, 'nats', variables),
    ...checkTransportCode(stack.natsProfile, documented, sources),
  ];
}
