import { defaults } from '@blog/common';
import { describe, expect, it } from 'vitest';
import { clone, imageServices, loadStack, type Data, type K8sObject } from './support/files.js';
import {
  checkAll,
  checkCompose,
  checkCourseObjects,
  checkDockerfiles,
  checkEnvUrls,
  checkEventBusStorage,
  checkHardening,
  checkIngress,
  checkNetworkPolicies,
  checkSkaffold,
  checkWorkloads,
  COURSE,
} from './support/checks.js';

const stack = loadStack();
const codeDefaults = { eventBusUrl: defaults.eventBusUrl, subscribers: defaults.subscribers };

/** A copy of infra/k8s with one object changed. */
function k8sWith(file: string, kind: string, change: (object: Data) => void): K8sObject[] {
  const copy = clone(stack.k8s);
  const target = copy.find((o) => o.file === `infra/k8s/${file}` && o.object.kind === kind);
  if (!target) throw new Error(`no ${kind} in ${file}`);
  change(target.object);
  return copy;
}
const podOf = (object: Data) => object.spec.template.spec;
const containerOf = (object: Data) => object.spec.template.spec.containers[0];

describe('the real files agree with each other and with the course', () => {
  it('no problem at all, every checker on every file', () => {
    expect(checkAll(stack, codeDefaults)).toEqual([]);
  });

  it('every workspace with a service (and the client) has a Dockerfile that matches the course', () => {
    expect(imageServices().sort()).toEqual(Object.keys(COURSE).sort());
    expect(checkDockerfiles(stack.dockerfiles, stack.dockerignore, imageServices())).toEqual([]);
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
    ).toContain('Service moderation-srv: its selector {"app":"moderator"} matches no Deployment');
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

  it('compose: a missing alias, a writable root, a ROUTES that drifted from the Ingress', () => {
    const broken = clone(stack.compose);
    broken.services.comments.networks.default.aliases = ['comments'];
    broken.services.query.read_only = false;
    broken.services.ingress.environment.ROUTES = broken.services.ingress.environment.ROUTES.replace(
      'query-srv:4002',
      'query-srv:4003',
    );
    delete broken.services.moderation.depends_on;
    const problems = checkCompose(broken, stack.k8s);
    expect(problems).toContain('compose comments: no network alias comments-srv');
    expect(problems).toContain('compose query: read_only is not true');
    expect(problems.some((p) => p.startsWith('compose ingress: ROUTES'))).toBe(true);
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

  it('hardening: root, a writable root filesystem, no limits, :latest, Always, no probes', () => {
    const broken = k8sWith('client-depl.yaml', 'Deployment', (d) => {
      podOf(d).securityContext.runAsNonRoot = false;
      containerOf(d).securityContext.readOnlyRootFilesystem = false;
      delete containerOf(d).resources.limits;
      containerOf(d).image = 'blog/client:latest';
      containerOf(d).imagePullPolicy = 'Always';
      delete containerOf(d).readinessProbe;
    });
    const problems = checkHardening(broken, { probes: true });
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

  it('network policies: a needed flow closed, an unneeded one opened', () => {
    const broken = clone(stack.netpol);
    const toBus = broken.find((p) => p.object.metadata.name === 'blog-allow-services-to-event-bus')!.object;
    toBus.spec.ingress[0].from[0].podSelector.matchExpressions[0].values = [
      'posts',
      'comments',
      'query',
      'client',
    ];
    const problems = checkNetworkPolicies(broken);
    expect(problems).toContain('netpol: moderation cannot reach event-bus:4005');
    expect(problems).toContain('netpol: client can reach event-bus:4005, which nothing needs');
    expect(checkNetworkPolicies([]).length).toBeGreaterThan(0);
  });
});
