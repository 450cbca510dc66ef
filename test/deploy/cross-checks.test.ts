import { defaults } from '@blog/common';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  clone,
  codeSources,
  designedTransportVariables,
  documentedTransportVariables,
  imageServices,
  loadStack,
  ROOT,
  type Data,
  type K8sObject,
} from './support/files.js';
import { checkAll } from './support/all-checks.js';
import {
  APP_PROBES,
  checkCompose,
  checkCourseObjects,
  checkDockerfiles,
  checkEnvUrls,
  checkEventBusStorage,
  checkHardening,
  checkIngress,
  checkLessons,
  checkSharedDeps,
  checkSkaffold,
  checkTransport,
  checkTransportCode,
  checkWorkloads,
  COURSE,
  NATS_PROBES,
} from './support/checks.js';
import {
  checkEventBusGateway,
  checkNats,
  checkNatsClients,
  checkNatsProfile,
  checkReplicas,
  checkRollingUpdates,
} from './support/cluster-checks.js';
import { checkTrust } from './support/trust-checks.js';

const stack = loadStack();
const codeDefaults = { eventBusUrl: defaults.eventBusUrl, subscribers: defaults.subscribers };
const documented = documentedTransportVariables();
const designed = designedTransportVariables();
/** What the manifests may set: the table's variables and those of the design for scaling out. */
const variables = { ...designed, ...documented };
const sources = codeSources();

/** A copy of infra/k8s with one object changed. */
function k8sWith(file: string, kind: string, change: (object: Data) => void): K8sObject[] {
  const copy = clone(stack.k8s);
  const target = copy.find((o) => o.file === `infra/k8s/${file}` && o.object.kind === kind);
  if (!target) throw new Error(`no ${kind} in ${file}`);
  change(target.object);
  return copy;
}
const podOf = (object: Data) => object.spec.template.spec;
/** The images' Dockerfiles and the local router's (router/Dockerfile), by folder. */
const withRouter = (dockerfiles: Record<string, string>): Record<string, string> => ({
  ...clone(dockerfiles),
  router: readFileSync(path.join(ROOT, 'router/Dockerfile'), 'utf8'),
});
const containerOf = (object: Data) => object.spec.template.spec.containers[0];

describe('the real files agree with each other and with the course', () => {
  it('no problem at all, every checker on every file', () => {
    expect([...checkAll(stack, codeDefaults, documented, designed, sources), ...checkTrust(stack)]).toEqual(
      [],
    );
  });

  it("the transport's variables are docs/event-bus.md's; the default deploy keeps the default, http", () => {
    expect(documented).toMatchObject({
      EVENT_TRANSPORT: 'http',
      NATS_URL: 'nats://nats-srv:4222',
      NATS_STREAM: 'blog',
    });
    expect(Object.keys(variables)).toContain('NATS_REPLICAS');
    const config = (objects: K8sObject[]) =>
      objects.find((o) => o.object.kind === 'ConfigMap' && o.object.metadata.name === 'event-transport');
    expect(config(stack.k8s)?.object.data).toEqual({ EVENT_TRANSPORT: 'http' });
    expect(config(stack.natsProfile)?.file).toBe('infra/nats/event-transport.yaml');
    expect(config(stack.natsProfile)?.object.data.EVENT_TRANSPORT).toBe('nats');
  });

  it('the nats profile applies its ConfigMaps first, the course objects, the cluster, not the http ConfigMap', () => {
    const kinds = stack.natsProfile.map((o) => `${o.object.kind}/${o.object.metadata.name}`);
    expect(kinds.slice(0, 2)).toEqual(['ConfigMap/event-transport', 'ConfigMap/nats-config']);
    const files = new Set(stack.natsProfile.map((o) => o.file));
    expect(files).not.toContain('infra/k8s/event-transport.yaml');
    expect(files).toContain('infra/k8s/ingress-srv.yaml');
    expect(kinds.filter((k) => k.startsWith('Deployment/'))).toHaveLength(6);
    expect(kinds.filter((k) => k.startsWith('StatefulSet/'))).toEqual(['StatefulSet/nats']);
    expect(kinds.filter((k) => k.startsWith('PodDisruptionBudget/'))).toHaveLength(7);
    expect(kinds).not.toContain('PersistentVolumeClaim/event-bus-data');
  });

  it('one pod of each by default, two of each with the nats profile, three NATS nodes', () => {
    const replicas = (objects: K8sObject[]) =>
      Object.fromEntries(
        objects
          .filter((o) => ['Deployment', 'StatefulSet'].includes(o.object.kind))
          .map((o) => [o.object.metadata.name, o.object.spec.replicas]),
      );
    expect(replicas(stack.k8s)).toEqual({
      'client-depl': 1,
      'comments-depl': 1,
      'event-bus-depl': 1,
      'moderation-depl': 1,
      'posts-depl': 1,
      'query-depl': 1,
    });
    expect(replicas(stack.natsProfile)).toEqual({
      'client-depl': 2,
      'comments-depl': 2,
      'event-bus-depl': 2,
      'moderation-depl': 2,
      'posts-depl': 2,
      'query-depl': 2,
      nats: 3,
    });
  });

  it('every workspace with a service (and the client) has a Dockerfile that matches the course', () => {
    expect(imageServices().sort()).toEqual(Object.keys(COURSE).sort());
    expect(checkDockerfiles(stack.dockerfiles, stack.dockerignore, imageServices())).toEqual([]);
  });

  it('every Dockerfile shares one npm ci layer and names what it copies', () => {
    expect(checkSharedDeps(withRouter(stack.dockerfiles), stack.workspaces)).toEqual([]);
  });

  it("the code's default ports are the course's", () => {
    for (const [name, port] of Object.entries(defaults.ports)) {
      expect(COURSE[name as keyof typeof COURSE].port).toBe(port);
    }
  });
});

describe('each checker reports a broken file', () => {
  it('course objects: a renamed Service, a missing NodePort', () => {
    const renamed = k8sWith('query-depl.yaml', 'Service', (s) => (s.metadata.name = 'query-service'));
    expect(checkCourseObjects(renamed)).toContain('infra/k8s/query-depl.yaml: no Service query-srv');
    const noNodePort = stack.k8s.filter((o) => o.file !== 'infra/k8s/posts-srv.yaml');
    expect(checkCourseObjects(noNodePort)).toContain('infra/k8s/posts-srv.yaml: no Service posts-srv');
  });

  it('workloads: template label, container name, probe port, Service selector and targetPort', () => {
    expect(
      checkWorkloads(
        k8sWith('posts-depl.yaml', 'Deployment', (d) => (d.spec.template.metadata.labels.app = 'post')),
      ),
    ).toContain('Deployment posts-depl: template label app=post, selector app=posts');
    expect(
      checkWorkloads(k8sWith('query-depl.yaml', 'Deployment', (d) => (containerOf(d).name = 'api'))),
    ).toContain('Deployment query-depl: container api, expected query');
    expect(
      checkWorkloads(
        k8sWith(
          'comments-depl.yaml',
          'Deployment',
          (d) => (containerOf(d).readinessProbe.httpGet.port = 4000),
        ),
      ),
    ).toContain('Deployment comments-depl: readinessProbe port 4000 is not a containerPort');
    expect(
      checkWorkloads(k8sWith('moderation-depl.yaml', 'Service', (s) => (s.spec.selector.app = 'moderator'))),
    ).toContain('Service moderation-srv: its selector {"app":"moderator"} matches no workload');
    expect(
      checkWorkloads(k8sWith('posts-srv.yaml', 'Service', (s) => (s.spec.ports[0].targetPort = 4001))),
    ).toContain('Service posts-srv: targetPort 4001 is not a containerPort of posts-depl');
  });

  it('ingress: a backend on the wrong port, a Service that does not exist, paths out of order', () => {
    const wrongPort = k8sWith(
      'ingress-srv.yaml',
      'Ingress',
      (i) => (i.spec.rules[0].http.paths[1].backend.service.port.number = 4000),
    );
    expect(checkIngress(wrongPort)).toContain('Ingress /posts: Service query-srv has no port 4000');
    const noService = stack.k8s.filter(
      (o) => !(o.file === 'infra/k8s/client-depl.yaml' && o.object.kind === 'Service'),
    );
    expect(checkIngress(noService)).toContain('Ingress /?(.*): backend Service client-srv does not exist');
    const reordered = k8sWith('ingress-srv.yaml', 'Ingress', (i) => i.spec.rules[0].http.paths.reverse());
    expect(checkIngress(reordered).some((p) => p.startsWith('Ingress: paths'))).toBe(true);
  });

  it('env URLs: a bus URL on a wrong port, a subscriber on a Service that does not exist', () => {
    const setEnv = (name: string, value: string) => (d: Data) => {
      containerOf(d).env.find((e: Data) => e.name === name).value = value;
    };
    expect(
      checkEnvUrls(
        k8sWith('posts-depl.yaml', 'Deployment', setEnv('EVENT_BUS_URL', 'http://event-bus-srv:4006')),
        codeDefaults,
      ),
    ).toContain('Deployment posts-depl EVENT_BUS_URL: Service event-bus-srv has no port 4006');
    const subscribers = codeDefaults.subscribers.replace('query-srv', 'query-clusterip-srv');
    expect(
      checkEnvUrls(
        k8sWith('event-bus-depl.yaml', 'Deployment', setEnv('SUBSCRIBERS', subscribers)),
        codeDefaults,
      ),
    ).toContain('Deployment event-bus-depl SUBSCRIBERS query: query-clusterip-srv is not a Service');
    expect(
      checkEnvUrls(stack.k8s, { ...codeDefaults, eventBusUrl: 'http://posts-clusterip-srv:4000' }),
    ).toContain('the code default of EVENT_BUS_URL: posts-clusterip-srv selects app posts, not event-bus');
  });

  it('skaffold: an image the manifests do not use, a wrong target, sync in production, push on', () => {
    const broken = clone(stack.skaffold);
    broken.build.artifacts[0].image = 'blog/postz';
    broken.build.artifacts[1].docker.target = 'runtime';
    broken.profiles[0].build.artifacts[2].sync = { manual: [{ src: 'query/src/**/*.ts', dest: '/tmp/app' }] };
    broken.build.local.push = true;
    const problems = checkSkaffold(broken, stack.k8s);
    expect(problems.some((p) => p.startsWith('skaffold: artifacts blog/client, blog/comments'))).toBe(true);
    expect(problems).toContain('skaffold blog/comments: target runtime, expected dev');
    expect(problems).toContain('skaffold profile production blog/query: syncs files into a runtime image');
    expect(problems).toContain('skaffold: build.local.push is not false');
  });

  it('compose: a missing alias, a writable root, an ingress with its own copy of the paths', () => {
    const broken = clone(stack.compose);
    broken.services.comments.networks.default.aliases = ['comments'];
    broken.services.query.read_only = false;
    broken.services.ingress.environment.ROUTES = '/posts=http://query-srv:4002';
    delete broken.services.ingress.depends_on.comments;
    delete broken.services.moderation.depends_on;
    const problems = checkCompose(broken, stack.k8s);
    expect(problems).toContain('compose comments: no network alias comments-srv');
    expect(problems).toContain('compose query: read_only is not true');
    expect(problems.some((p) => p.startsWith('compose ingress: ROUTES'))).toBe(true);
    expect(problems).toContain('compose ingress: does not wait for comments-srv to be healthy');
    expect(problems).toContain('compose moderation: does not wait for event-bus');
  });

  it('Dockerfiles: a wrong EXPOSE, npm as the command, root at run time, a missing Dockerfile, .dockerignore', () => {
    const files = clone(stack.dockerfiles);
    files.posts = files
      .posts!.replace('EXPOSE 4000\n# node itself', 'EXPOSE 4001\n# node itself')
      .replace('CMD ["node", "posts/dist/index.js"]', 'CMD ["npm", "start"]');
    files.query = files.query!.replace(/USER node\nEXPOSE 4002\n# node itself/, 'EXPOSE 4002\n# node itself');
    delete files.moderation;
    const problems = checkDockerfiles(files, '.git\n', Object.keys(COURSE));
    expect(problems).toContain('posts/Dockerfile: runtime EXPOSE 4001, expected 4000');
    expect(problems).toContain(
      'posts/Dockerfile: runtime CMD ["npm", "start"], expected CMD ["node", "posts/dist/index.js"]',
    );
    expect(problems.some((p) => p.startsWith('query/Dockerfile: runtime runs as'))).toBe(true);
    expect(problems).toContain('moderation: no Dockerfile');
    expect(problems).toContain('.dockerignore: does not exclude **/node_modules');
  });

  it('Dockerfiles: a deps stage of its own, a copy of the whole context', () => {
    const files = withRouter(stack.dockerfiles);
    files.query = files.query!.replace('COPY client/package.json client/\n', '');
    files.posts = files.posts!.replace('COPY common/ common/', 'COPY . .');
    const problems = checkSharedDeps(files, stack.workspaces);
    expect(problems).toContain("query/Dockerfile: the deps stage differs from posts/Dockerfile's");
    expect(problems.some((p) => p.startsWith('query/Dockerfile: deps copies'))).toBe(true);
    expect(problems).toContain('posts/Dockerfile: COPY . . copies the whole context');
  });

  it('hardening: root, a writable root filesystem, no limits, :latest, Always, no probes', () => {
    const broken = k8sWith('client-depl.yaml', 'Deployment', (d) => {
      podOf(d).securityContext.runAsNonRoot = false;
      containerOf(d).securityContext.readOnlyRootFilesystem = false;
      delete containerOf(d).resources.limits;
      containerOf(d).image = 'blog/client:latest';
      containerOf(d).imagePullPolicy = 'Always';
      delete containerOf(d).readinessProbe;
    });
    const problems = checkHardening(broken, { probes: APP_PROBES });
    const c = 'infra/k8s/client-depl.yaml Deployment/client-depl';
    expect(problems).toEqual([
      `${c}: runAsNonRoot is not true`,
      `${c} container client: readOnlyRootFilesystem is not true`,
      `${c} container client: no limits.cpu`,
      `${c} container client: no limits.memory`,
      `${c} container client: image blog/client:latest is :latest`,
      `${c} container client: imagePullPolicy is not IfNotPresent`,
      `${c} container client: no readinessProbe on /readyz`,
    ]);
  });

  it('lessons: an untagged image, Always, a second container, a renamed Pod', () => {
    const lessons = clone(stack.lessons);
    const pod = lessons.find((o) => o.object.kind === 'Pod')!.object;
    pod.spec.containers[0].image = 'blog/posts';
    pod.spec.containers[0].imagePullPolicy = 'Always';
    const deployment = lessons.find((o) => o.object.kind === 'Deployment')!.object;
    deployment.spec.template.spec.containers.push({
      name: 'sidecar',
      image: 'x:1',
      imagePullPolicy: 'IfNotPresent',
    });
    expect(checkLessons(lessons)).toEqual([
      'infra/lessons/posts-depl.yaml Deployment/posts-depl: not one container named posts',
      'infra/lessons/posts.yaml Pod/posts container posts: image blog/posts has no tag',
      'infra/lessons/posts.yaml Pod/posts container posts: imagePullPolicy is not IfNotPresent',
    ]);
    pod.metadata.name = 'posts-pod';
    expect(checkLessons(lessons)).toContain('infra/lessons: no Pod posts');
  });

  it('event-bus storage: two replicas, a rolling update, no volume', () => {
    const broken = k8sWith('event-bus-depl.yaml', 'Deployment', (d) => {
      d.spec.replicas = 2;
      delete d.spec.strategy;
      podOf(d).volumes = podOf(d).volumes.filter((v: Data) => v.name !== 'data');
    });
    expect(checkEventBusStorage(broken)).toEqual([
      'event-bus-depl: replicas is not 1',
      'event-bus-depl: strategy is not Recreate',
      'event-bus-depl: /data is not a PersistentVolumeClaim',
    ]);
  });
});

/** A copy of what the nats profile applies with one object changed. */
function natsWith(kind: string, name: string, change: (object: Data) => void): K8sObject[] {
  const copy = clone(stack.natsProfile);
  const target = copy.find((o) => o.object.kind === kind && o.object.metadata.name === name);
  if (!target) throw new Error(`no ${kind} ${name}`);
  change(target.object);
  return copy;
}
const natsSet = (change: (object: Data) => void) => natsWith('StatefulSet', 'nats', change);
const natsConf = (change: (text: string) => string) =>
  natsWith('ConfigMap', 'nats-config', (c) => (c.data['nats.conf'] = change(c.data['nats.conf'])));
const transportWith = (change: (data: Record<string, string>) => void) =>
  natsWith('ConfigMap', 'event-transport', (c) => change(c.data));
const argAfter = (d: Data, flag: string) => containerOf(d).args.indexOf(flag) + 1;

describe('the nats profile: each checker reports a broken file', () => {
  it('the NATS cluster: one node, started in order, a floating image tag, routes to two nodes', () => {
    expect(
      checkNats(
        natsSet((s) => {
          s.spec.replicas = 1;
          s.spec.podManagementPolicy = 'OrderedReady';
          containerOf(s).image = 'nats:alpine';
          const routes = argAfter(s, '--routes');
          containerOf(s).args[routes] = containerOf(s).args[routes].split(',').slice(0, 2).join(',');
        }),
      ),
    ).toEqual([
      'StatefulSet nats: replicas 1, expected 3',
      'StatefulSet nats: podManagementPolicy is not Parallel (each node would wait for the previous one)',
      'StatefulSet nats: image nats:alpine is not the official nats:<x.y.z>-alpine',
      'StatefulSet nats: --routes nats-0.nats-headless:6222,nats-1.nats-headless:6222, expected nats-0.nats-headless:6222',
    ]);
  });

  it('the NATS configuration: a fixed server name, the store off the claim, no cluster name, no monitoring', () => {
    const broken = natsConf((text) =>
      text
        .replace('server_name: $POD_NAME', 'server_name: nats')
        .replace('store_dir: /data', 'store_dir: /tmp/js')
        .replace('name: blog', '')
        .replace('http_port: 8222', ''),
    );
    expect(checkNats(broken)).toEqual([
      "StatefulSet nats: server_name is not the pod's name",
      'StatefulSet nats: the store (/tmp/js) is not on a claim of its volumeClaimTemplates',
      'StatefulSet nats: the cluster has no name',
      'StatefulSet nats: monitor port off, expected containerPort 8222',
    ]);
    const noConfig = stack.natsProfile.filter((o) => o.object.metadata.name !== 'nats-config');
    expect(checkNats(noConfig)).toContain(
      'StatefulSet nats: --config is not a file of a ConfigMap mounted in the pod',
    );
  });

  it('the NATS Services: routes behind a ClusterIP, a probe on the client port, nats-srv to the wrong port', () => {
    const broken = natsSet((s) => (containerOf(s).readinessProbe.httpGet.port = 'client'));
    const headless = broken.find((o) => o.object.metadata.name === 'nats-headless')!.object;
    delete headless.spec.clusterIP;
    delete headless.spec.publishNotReadyAddresses;
    const service = broken.find((o) => o.object.metadata.name === 'nats-srv')!.object;
    service.spec.ports[0].targetPort = 'monitor';
    expect(checkNats(broken)).toEqual([
      'StatefulSet nats: readinessProbe asks port 4222, not the monitoring port',
      'Service nats-headless: not headless (clusterIP: None)',
      'Service nats-headless: no publishNotReadyAddresses (a node must find the others before it is ready)',
      'Service nats-srv: port 4222 goes to container port monitor',
    ]);
    expect(checkNats(stack.natsProfile.filter((o) => o.object.kind !== 'StatefulSet'))).toEqual([
      'no StatefulSet nats',
    ]);
  });

  it('hardening of the NATS pods: root, probes on the app routes', () => {
    const broken = natsSet((s) => {
      podOf(s).securityContext.runAsUser = 0;
      containerOf(s).readinessProbe.httpGet.path = '/readyz';
    }).filter((o) => o.file.startsWith('infra/nats/'));
    const c = 'infra/nats/nats-cluster.yaml StatefulSet/nats';
    expect(checkHardening(broken, { probes: NATS_PROBES })).toEqual([
      `${c}: runAsUser is not 1000`,
      `${c} container nats: no readinessProbe on /healthz?js-server-only=true`,
    ]);
  });

  it('the clients: NATS_URL without every node, the stream on one node only', () => {
    const broken = transportWith((data) => {
      data.NATS_URL = 'nats://nats-srv:4222';
      data.NATS_REPLICAS = '1';
    });
    expect(checkNatsClients(broken)).toEqual([
      'ConfigMap event-transport: NATS_URL nats://nats-srv:4222, expected nats://nats-0.nats-headless:4222,nats://nats-1.nats-headless:4222,nats://nats-2.nats-headless:4222',
      'ConfigMap event-transport: NATS_REPLICAS 1, expected 3 (one copy per node)',
    ]);
  });

  it('replicas: a second pod on the HTTP bus, one pod on nats, a budget missing, too strict, or for nothing', () => {
    const http = k8sWith('query-depl.yaml', 'Deployment', (d) => (d.spec.replicas = 2));
    expect(checkReplicas(http, 'http')).toEqual(['Deployment query-depl: replicas 2, expected 1']);
    const broken = natsWith('Deployment', 'posts-depl', (d) => (d.spec.replicas = 1)).filter(
      (o) => o.object.metadata.name !== 'query-pdb',
    );
    broken.find((o) => o.object.metadata.name === 'client-pdb')!.object.spec = {
      minAvailable: 2,
      selector: { matchLabels: { app: 'client' } },
    };
    broken.find((o) => o.object.metadata.name === 'comments-pdb')!.object.spec.selector.matchLabels.app =
      'comment';
    expect(checkReplicas(broken, 'nats')).toEqual([
      'PodDisruptionBudget client-pdb: not maxUnavailable 1 (or minAvailable 1)',
      'Deployment comments-depl: 0 PodDisruptionBudgets, expected one',
      'Deployment posts-depl: replicas 1, expected 2',
      'Deployment query-depl: 0 PodDisruptionBudgets, expected one',
      'PodDisruptionBudget comments-pdb: selects no pod',
    ]);
    const budgets = stack.natsProfile.filter((o) => o.object.kind === 'PodDisruptionBudget');
    expect(checkReplicas([...stack.k8s, ...budgets.slice(0, 1)], 'http')).toEqual([
      'Deployment client-depl: a PodDisruptionBudget for a single pod',
    ]);
  });

  it('rolling updates: a pod down during the update, no preStop, a grace period shorter than the drain', () => {
    const broken = natsWith('Deployment', 'comments-depl', (d) => {
      d.spec.strategy.rollingUpdate.maxUnavailable = 1;
      delete containerOf(d).lifecycle;
    });
    broken.find(
      (o) => o.object.metadata.name === 'query-depl',
    )!.object.spec.template.spec.terminationGracePeriodSeconds = 10;
    expect(checkRollingUpdates(broken, 'nats')).toEqual([
      'Deployment comments-depl: strategy is not RollingUpdate with maxUnavailable 0, maxSurge 1',
      'Deployment comments-depl: no preStop sleep',
      'Deployment query-depl: terminationGracePeriodSeconds 10 leaves less than 10 s after the preStop sleep',
    ]);
    const http = k8sWith(
      'event-bus-depl.yaml',
      'Deployment',
      (d) => (d.spec.strategy = { type: 'RollingUpdate' }),
    );
    expect(checkRollingUpdates(http, 'http')).toEqual([
      'Deployment event-bus-depl: strategy is not Recreate',
    ]);
    expect(checkRollingUpdates(stack.k8s, 'nats')).toEqual([
      'Deployment event-bus-depl: strategy is not RollingUpdate with maxUnavailable 0, maxSurge 1',
    ]);
  });

  it("the bus as a gateway: the HTTP bus's claim mounted, or applied with nothing using it", () => {
    expect(checkEventBusGateway(stack.k8s)).toEqual(['event-bus-depl: mounts the claim event-bus-data']);
    const claim = stack.k8s.find((o) => o.object.kind === 'PersistentVolumeClaim')!;
    expect(checkEventBusGateway([...stack.natsProfile, claim])).toEqual([
      'PersistentVolumeClaim event-bus-data: no pod uses it',
    ]);
  });

  it('transport: the profile left on http, a URL to a Service or a pod that does not exist, a bad stream name', () => {
    const broken = transportWith((data) => {
      data.EVENT_TRANSPORT = 'http';
      data.NATS_URL = 'nats://nats:4222,nats://nats-3.nats-headless:4222,nats://nats-0.nats-srv:4222';
      data.NATS_STREAM = 'blog.events';
      data.NATS_SERVERS = 'nats://nats-srv:4222';
    });
    expect(checkTransport(broken, 'nats', variables)).toEqual([
      'ConfigMap event-transport: EVENT_TRANSPORT is http, expected nats',
      'ConfigMap event-transport: NATS_SERVERS is not a variable of docs/event-bus.md',
      'ConfigMap event-transport NATS_URL: nats is not a Service',
      'ConfigMap event-transport NATS_URL: nats-3.nats-headless: StatefulSet nats has 3 pods',
      'ConfigMap event-transport NATS_URL: nats-0.nats-srv: StatefulSet nats names its pods under nats-headless',
      'ConfigMap event-transport: NATS_STREAM "blog.events" is not a stream name',
    ]);
    const wrongPort = transportWith((data) => (data.NATS_URL = 'nats://nats-srv:8222'));
    expect(checkTransport(wrongPort, 'nats', variables)).toEqual([
      'ConfigMap event-transport NATS_URL: port 8222 is not the client port 4222',
    ]);
  });

  it('transport: a Deployment without the ConfigMap, one that overrides it, the ConfigMap applied last', () => {
    const broken = natsWith('Deployment', 'query-depl', (d) => delete containerOf(d).envFrom);
    const posts = broken.find((o) => o.object.metadata.name === 'posts-depl')!;
    containerOf(posts.object).env.push({ name: 'EVENT_TRANSPORT', value: 'http' });
    containerOf(posts.object).envFrom[0].configMapRef.optional = false;
    const config = broken.findIndex((o) => o.object.metadata.name === 'event-transport');
    broken.push(...broken.splice(config, 1));
    const problems = checkTransport(broken, 'nats', variables);
    expect(problems).toContain('Deployment query-depl: no envFrom ConfigMap event-transport');
    expect(problems).toContain('Deployment posts-depl: envFrom event-transport is not optional');
    expect(problems).toContain("Deployment posts-depl: sets EVENT_TRANSPORT itself, over the ConfigMap's");
    expect(problems).toContain('Deployment event-bus-depl: applied before ConfigMap event-transport');
    expect(checkTransport(stack.k8s, 'nats', variables)).toContain(
      'ConfigMap event-transport: EVENT_TRANSPORT is http, expected nats',
    );
    expect(checkTransport(stack.lessons, 'http', variables)).toContain(
      'ConfigMap event-transport: 0 of them, expected one',
    );
  });

  it('transport in the code: a variable the code does not read, a default URL to no Service', () => {
    const code = [
      {
        file: 'common/src/x.ts',
        text: 'const transport = process.env.EVENT_TRANSPORT; const u = process.env.NATS_URL;',
      },
      {
        file: 'common/src/y.ts',
        text: "export const natsUrl = 'nats://nats-service:4222'; const local = 'nats://127.0.0.1:4222';",
      },
    ];
    const table = { EVENT_TRANSPORT: 'http', NATS_URL: 'nats://nats-srv:4222', NATS_STREAM: 'blog' };
    expect(checkTransportCode(stack.natsProfile, table, code)).toEqual([
      'the code reads EVENT_TRANSPORT but not NATS_STREAM, which docs/event-bus.md lists',
      'common/src/y.ts nats://nats-service:4222: nats-service is not a Service',
    ]);
    const fine = [
      { file: 'common/src/z.ts', text: "EVENT_TRANSPORT NATS_URL NATS_STREAM 'nats://nats-srv:4222'" },
    ];
    expect(checkTransportCode(stack.natsProfile, table, fine)).toEqual([]);
  });

  it('skaffold profile: the default rawYaml left beside, a setting of its own, the kustomization incomplete', () => {
    const broken = clone(stack.skaffold);
    const profile = broken.profiles.find((p: Data) => p.name === 'nats');
    delete profile.patches;
    profile.build = { local: { push: false } };
    const kustomization = clone(stack.kustomization);
    kustomization.resources = [
      ...kustomization.resources.filter((r: string) => r !== 'k8s/ingress-srv.yaml'),
      'k8s/event-transport.yaml',
      'nat/nats.yaml',
    ];
    expect(checkNatsProfile(broken, kustomization)).toEqual([
      'skaffold profile nats: sets build',
      'skaffold profile nats: applies ./infra/k8s/* too',
      'infra/kustomization.yaml: applies infra/k8s/event-transport.yaml',
      'infra/kustomization.yaml: infra/nat/nats.yaml is no file',
      'infra/kustomization.yaml: does not apply infra/k8s/ingress-srv.yaml',
    ]);
    expect(checkNatsProfile({ ...broken, profiles: [] }, kustomization)).toEqual([
      'skaffold: no profile nats',
    ]);
  });
});
