/**
 * Cross-checks between the code's defaults, the Kubernetes manifests, skaffold.yaml, docker-compose.yml and
 * the Dockerfiles, and the hardening every pod must have. Each checker returns its problems as readable
 * lines (empty: all good), so a test shows every problem at once, and a negative test breaks one thing
 * and expects the line that names it.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Data, K8sObject } from './files.js';
import { ROOT } from './files.js';

/** The course's names and ports (docs/architecture.md, "The course's contract"), to the letter. */
export const COURSE = {
  posts: { port: 4000, deployment: 'posts-depl', service: 'posts-clusterip-srv', file: 'posts-depl.yaml' },
  comments: { port: 4001, deployment: 'comments-depl', service: 'comments-srv', file: 'comments-depl.yaml' },
  query: { port: 4002, deployment: 'query-depl', service: 'query-srv', file: 'query-depl.yaml' },
  moderation: {
    port: 4003,
    deployment: 'moderation-depl',
    service: 'moderation-srv',
    file: 'moderation-depl.yaml',
  },
  'event-bus': {
    port: 4005,
    deployment: 'event-bus-depl',
    service: 'event-bus-srv',
    file: 'event-bus-depl.yaml',
  },
  client: { port: 3000, deployment: 'client-depl', service: 'client-srv', file: 'client-depl.yaml' },
} as const;
export type AppName = keyof typeof COURSE;
export const APPS = Object.keys(COURSE) as AppName[];

/** The Ingress's paths in the course's order (the catch-all last). */
export const INGRESS_PATHS = [
  { path: '/posts/create', pathType: 'Prefix', service: 'posts-clusterip-srv', port: 4000 },
  { path: '/posts', pathType: 'Prefix', service: 'query-srv', port: 4002 },
  { path: '/posts/?(.*)/comments', pathType: 'ImplementationSpecific', service: 'comments-srv', port: 4001 },
  { path: '/?(.*)', pathType: 'ImplementationSpecific', service: 'client-srv', port: 3000 },
];

export const kindOf = (objects: K8sObject[], kind: string) => objects.filter((o) => o.object?.kind === kind);
export const named = (objects: K8sObject[], kind: string, name: string) =>
  kindOf(objects, kind).find((o) => o.object?.metadata?.name === name);

/** The kinds that run pods from a template. */
const WORKLOADS = ['Deployment', 'StatefulSet'];

/** The pod specs of Deployments, StatefulSets and bare Pods, with a name for messages. */
export function podSpecs(objects: K8sObject[]): { name: string; kind: string; spec: Data }[] {
  return objects.flatMap(({ file, object }) => {
    const name = `${file} ${object?.kind}/${object?.metadata?.name}`;
    if (WORKLOADS.includes(object?.kind))
      return [{ name, kind: object.kind as string, spec: object.spec?.template?.spec }];
    if (object?.kind === 'Pod') return [{ name, kind: 'Pod', spec: object.spec }];
    return [];
  });
}

function containerPorts(deployment: Data): (number | string)[] {
  return (deployment?.spec?.template?.spec?.containers ?? []).flatMap((c: Data) =>
    (c.ports ?? []).flatMap((p: Data) => [p.containerPort, ...(p.name ? [p.name] : [])]),
  );
}

export function labelsMatch(selector: Data, labels: Record<string, string> = {}): boolean {
  if (!selector) return false;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[key] !== value) return false;
  }
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const has = key in labels;
    if (operator === 'In' && !(has && values.includes(labels[key]))) return false;
    if (operator === 'NotIn' && has && values.includes(labels[key])) return false;
    if (operator === 'Exists' && !has) return false;
    if (operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

/** The Deployment or StatefulSet a Service's selector picks (plain `selector: {app: x}` maps). */
function selectedDeployment(objects: K8sObject[], service: Data): Data | undefined {
  const selector = service?.spec?.selector;
  if (!selector || Object.keys(selector).length === 0) return undefined;
  return objects
    .filter((o) => WORKLOADS.includes(o.object?.kind))
    .map((o) => o.object)
    .find((d) => labelsMatch({ matchLabels: selector }, d?.spec?.template?.metadata?.labels));
}

/** The course's files, objects, names and ports in infra/k8s. */
export function checkCourseObjects(k8s: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const app of APPS) {
    const { port, deployment, service, file } = COURSE[app];
    const inFile = k8s.filter((o) => o.file === `infra/k8s/${file}`);
    if (!named(inFile, 'Deployment', deployment))
      problems.push(`infra/k8s/${file}: no Deployment ${deployment}`);
    const srv = named(inFile, 'Service', service)?.object;
    if (!srv) problems.push(`infra/k8s/${file}: no Service ${service}`);
    else if (!(srv.spec?.ports ?? []).some((p: Data) => p.port === port))
      problems.push(`Service ${service}: no port ${port}`);
    if (srv && (srv.spec?.type ?? 'ClusterIP') !== 'ClusterIP')
      problems.push(`Service ${service}: not ClusterIP`);
  }
  const nodePort = named(
    k8s.filter((o) => o.file === 'infra/k8s/posts-srv.yaml'),
    'Service',
    'posts-srv',
  )?.object;
  if (!nodePort) problems.push('infra/k8s/posts-srv.yaml: no Service posts-srv');
  else {
    if (nodePort.spec?.type !== 'NodePort') problems.push('Service posts-srv: not a NodePort');
    if (!(nodePort.spec?.ports ?? []).some((p: Data) => p.port === 4000 && p.targetPort === 4000))
      problems.push('Service posts-srv: no port 4000 -> 4000');
  }
  if (!named(k8s, 'Ingress', 'ingress-srv'))
    problems.push('infra/k8s/ingress-srv.yaml: no Ingress ingress-srv');
  return problems;
}

/** Deployments, their labels, containers and probes; Services, their selectors and target ports. */
export function checkWorkloads(k8s: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const { object: d } of kindOf(k8s, 'Deployment')) {
    const name = `Deployment ${d.metadata?.name}`;
    const app = d.spec?.selector?.matchLabels?.app;
    if (!app) problems.push(`${name}: no selector.matchLabels.app`);
    if (d.spec?.template?.metadata?.labels?.app !== app)
      problems.push(
        `${name}: template label app=${d.spec?.template?.metadata?.labels?.app}, selector app=${app}`,
      );
    if (app && d.metadata?.name !== `${app}-depl`) problems.push(`${name}: should be named ${app}-depl`);
    const containers: Data[] = d.spec?.template?.spec?.containers ?? [];
    if (containers.length !== 1) problems.push(`${name}: ${containers.length} containers, expected one`);
    const container = containers[0];
    if (container && container.name !== app)
      problems.push(`${name}: container ${container.name}, expected ${app}`);
    const ports = containerPorts(d);
    const coursePort = COURSE[app as AppName]?.port;
    if (coursePort && !ports.includes(coursePort)) problems.push(`${name}: no containerPort ${coursePort}`);
    for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe']) {
      const port = container?.[probe]?.httpGet?.port;
      if (port !== undefined && !ports.includes(port))
        problems.push(`${name}: ${probe} port ${port} is not a containerPort`);
    }
    const portEnv = (container?.env ?? []).find((e: Data) => e.name === 'PORT')?.value;
    if (portEnv !== undefined && !ports.includes(Number(portEnv)))
      problems.push(`${name}: PORT=${portEnv} is not a containerPort`);
  }
  for (const { object: s } of kindOf(k8s, 'Service')) {
    const name = `Service ${s.metadata?.name}`;
    const deployment = selectedDeployment(k8s, s);
    if (!deployment) {
      problems.push(`${name}: its selector ${JSON.stringify(s.spec?.selector)} matches no workload`);
      continue;
    }
    for (const port of s.spec?.ports ?? []) {
      const target = port.targetPort ?? port.port;
      if (!containerPorts(deployment).includes(target))
        problems.push(`${name}: targetPort ${target} is not a containerPort of ${deployment.metadata?.name}`);
    }
  }
  return problems;
}

/** The Ingress of the course: class, annotation, host, paths in order, and backends that exist. */
export function checkIngress(k8s: K8sObject[]): string[] {
  const problems: string[] = [];
  const ingress = named(k8s, 'Ingress', 'ingress-srv')?.object;
  if (!ingress) return ['no Ingress ingress-srv'];
  if (ingress.spec?.ingressClassName !== 'nginx') problems.push('Ingress: ingressClassName is not nginx');
  if (ingress.metadata?.annotations?.['nginx.ingress.kubernetes.io/use-regex'] !== 'true')
    problems.push('Ingress: annotation nginx.ingress.kubernetes.io/use-regex is not "true"');
  const rule = ingress.spec?.rules?.[0];
  if (rule?.host !== 'posts.com') problems.push(`Ingress: host ${rule?.host}, expected posts.com`);
  const paths: Data[] = rule?.http?.paths ?? [];
  const actual = paths.map((p) => ({
    path: p.path,
    pathType: p.pathType,
    service: p.backend?.service?.name,
    port: p.backend?.service?.port?.number,
  }));
  if (JSON.stringify(actual) !== JSON.stringify(INGRESS_PATHS))
    problems.push(
      `Ingress: paths ${JSON.stringify(actual)} differ from the course's ${JSON.stringify(INGRESS_PATHS)}`,
    );
  for (const { service, port, path: p } of actual) {
    const target = named(k8s, 'Service', service)?.object;
    if (!target) problems.push(`Ingress ${p}: backend Service ${service} does not exist`);
    else if (!(target.spec?.ports ?? []).some((sp: Data) => sp.port === port))
      problems.push(`Ingress ${p}: Service ${service} has no port ${port}`);
  }
  return problems;
}

/** `http://host:port/path` to a Service of the manifests: host a Service name, port one of its ports. */
export function checkUrl(k8s: K8sObject[], where: string, url: string, expectedApp?: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [`${where}: "${url}" is not a URL`];
  }
  const service = named(k8s, 'Service', parsed.hostname)?.object;
  if (!service) return [`${where}: ${parsed.hostname} is not a Service`];
  const port = Number(parsed.port || 80);
  if (!(service.spec?.ports ?? []).some((p: Data) => p.port === port))
    return [`${where}: Service ${parsed.hostname} has no port ${port}`];
  const app = service.spec?.selector?.app;
  if (expectedApp && app !== expectedApp)
    return [`${where}: ${parsed.hostname} selects app ${app}, not ${expectedApp}`];
  return [];
}

/** Every bus URL (in the manifests' env and in the code's defaults) reaches a real Service and port. */
export function checkEnvUrls(
  k8s: K8sObject[],
  codeDefaults: { eventBusUrl: string; subscribers: string },
): string[] {
  const problems: string[] = [];
  const checkBus = (where: string, url: string) => problems.push(...checkUrl(k8s, where, url, 'event-bus'));
  const checkSubscribers = (where: string, value: string) => {
    const entries = value.split(',').map((e) => e.trim());
    const names = entries.map((e) => e.split('=')[0]);
    for (const app of ['posts', 'comments', 'query', 'moderation']) {
      if (!names.includes(app)) problems.push(`${where}: no subscriber ${app}`);
    }
    for (const entry of entries) {
      const [name, url = ''] = [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)];
      problems.push(...checkUrl(k8s, `${where} ${name}`, url, name));
      if (!url.endsWith('/events')) problems.push(`${where} ${name}: ${url} does not end in /events`);
    }
  };
  checkBus('the code default of EVENT_BUS_URL', codeDefaults.eventBusUrl);
  checkSubscribers('the code default of SUBSCRIBERS', codeDefaults.subscribers);
  for (const { object } of kindOf(k8s, 'Deployment')) {
    for (const container of object.spec?.template?.spec?.containers ?? []) {
      for (const env of container.env ?? []) {
        const where = `Deployment ${object.metadata?.name} ${env.name}`;
        if (env.name === 'EVENT_BUS_URL') checkBus(where, env.value);
        if (env.name === 'SUBSCRIBERS') checkSubscribers(where, env.value);
      }
    }
  }
  return problems;
}

/** The image name without its tag. */
const repository = (image: string) => image.replace(/:[^:/]+$/, '');

function manifestImages(k8s: K8sObject[]): string[] {
  return podSpecs(k8s)
    .flatMap(({ spec }) => (spec?.containers ?? []).map((c: Data) => repository(c.image)))
    .sort();
}

/** skaffold.yaml builds exactly the manifests' images, from the right Dockerfiles and stages. */
export function checkSkaffold(skaffold: Data, k8s: K8sObject[]): string[] {
  const problems: string[] = [];
  if (skaffold?.build?.local?.push !== false) problems.push('skaffold: build.local.push is not false');
  if (JSON.stringify(skaffold?.manifests?.rawYaml) !== JSON.stringify(['./infra/k8s/*']))
    problems.push('skaffold: manifests.rawYaml is not [./infra/k8s/*]');
  if (!skaffold?.deploy?.kubectl) problems.push('skaffold: no deploy.kubectl');
  const images = manifestImages(k8s);
  const checkArtifacts = (where: string, artifacts: Data[], target: 'dev' | 'runtime') => {
    const built = artifacts.map((a) => a.image).sort();
    if (JSON.stringify(built) !== JSON.stringify(images))
      problems.push(
        `${where}: artifacts ${built.join(', ')} differ from the manifests' images ${images.join(', ')}`,
      );
    for (const artifact of artifacts) {
      const app = String(artifact.image).split('/').pop();
      const name = `${where} ${artifact.image}`;
      if (artifact.context !== '.') problems.push(`${name}: context is not the repository root`);
      if (artifact.docker?.dockerfile !== `${app}/Dockerfile`)
        problems.push(`${name}: dockerfile ${artifact.docker?.dockerfile}, expected ${app}/Dockerfile`);
      else if (!existsSync(path.join(ROOT, artifact.docker.dockerfile)))
        problems.push(`${name}: ${artifact.docker.dockerfile} does not exist`);
      if (artifact.docker?.target !== target)
        problems.push(`${name}: target ${artifact.docker?.target}, expected ${target}`);
      const sync: Data[] = artifact.sync?.manual ?? [];
      if (target === 'dev') {
        if (!sync.some((rule) => String(rule.src).startsWith(`${app}/src/`)))
          problems.push(`${name}: no sync.manual rule for ${app}/src`);
        for (const rule of sync) {
          if (rule.dest !== '/tmp/app')
            problems.push(`${name}: sync dest ${rule.dest}, the dev stage runs from /tmp/app`);
        }
      } else if (artifact.sync) problems.push(`${name}: syncs files into a runtime image`);
    }
  };
  checkArtifacts('skaffold', skaffold?.build?.artifacts ?? [], 'dev');
  const production = (skaffold?.profiles ?? []).find((p: Data) => p.name === 'production');
  if (!production) problems.push('skaffold: no profile production');
  else checkArtifacts('skaffold profile production', production.build?.artifacts ?? [], 'runtime');
  return problems;
}

/** docker-compose.yml: the manifests' images, the Services' names as aliases, hardening, start order. */
export function checkCompose(compose: Data, k8s: K8sObject[]): string[] {
  const problems: string[] = [];
  const services: Record<string, Data> = compose?.services ?? {};
  const clusterIpNames = kindOf(k8s, 'Service')
    .filter((s) => (s.object.spec?.type ?? 'ClusterIP') === 'ClusterIP')
    .map((s) => s.object.metadata.name)
    .sort();
  const aliases: string[] = [];
  const images = new Map(
    podSpecs(k8s).flatMap(({ spec }) =>
      (spec?.containers ?? []).map((c: Data) => [c.name, c.image] as const),
    ),
  );
  for (const [name, service] of Object.entries(services)) {
    const where = `compose ${name}`;
    const app = name;
    const own: string[] = service.networks?.default?.aliases ?? [];
    aliases.push(...own);
    if (name !== 'ingress') {
      const expected = COURSE[name as AppName]?.service;
      if (!expected) problems.push(`${where}: not a service of the course`);
      else if (!own.includes(expected)) problems.push(`${where}: no network alias ${expected}`);
    }
    // The ingress is the local router's image (router/Dockerfile); ingress-nginx does its job in a cluster.
    const image = name === 'ingress' ? 'blog/ingress:0.0.1' : images.get(app);
    if (service.image !== image) problems.push(`${where}: image ${service.image}, expected ${image}`);
    const dockerfile = name === 'ingress' ? 'router/Dockerfile' : `${app}/Dockerfile`;
    const build = service.build ?? {};
    if (build.context !== '.' || build.dockerfile !== dockerfile || build.target !== 'runtime')
      problems.push(`${where}: build is not context ., ${dockerfile}, target runtime`);
    if (service.read_only !== true) problems.push(`${where}: read_only is not true`);
    if (!(service.tmpfs ?? []).includes('/tmp')) problems.push(`${where}: no tmpfs /tmp`);
    if (!(service.cap_drop ?? []).includes('ALL')) problems.push(`${where}: cap_drop does not include ALL`);
    if (!(service.security_opt ?? []).includes('no-new-privileges:true'))
      problems.push(`${where}: no security_opt no-new-privileges:true`);
    if (service.user !== 'node') problems.push(`${where}: user is not node`);
    const test: string[] = service.healthcheck?.test ?? [];
    if (
      test[0] !== 'CMD' ||
      test[1] !== 'node' ||
      !/fetch\('http:\/\/127\.0\.0\.1:\d+\/(readyz|healthz)?'\)/.test(test[3] ?? '')
    )
      problems.push(`${where}: healthcheck is not node -e "fetch('http://127.0.0.1:PORT/readyz')..."`);
    const port = COURSE[app as AppName]?.port;
    if (port && name !== 'ingress' && !String(test[3]).includes(`:${port}/`))
      problems.push(`${where}: healthcheck does not ask port ${port}`);
    for (const [dependency, condition] of Object.entries<Data>(service.depends_on ?? {})) {
      if (!services[dependency]) problems.push(`${where}: depends on unknown ${dependency}`);
      if (condition?.condition !== 'service_healthy')
        problems.push(`${where}: ${dependency} is not service_healthy`);
    }
    if (['posts', 'comments', 'query', 'moderation'].includes(name) && !service.depends_on?.['event-bus'])
      problems.push(`${where}: does not wait for event-bus`);
  }
  if (JSON.stringify([...aliases].sort()) !== JSON.stringify(clusterIpNames))
    problems.push(
      `compose: aliases ${[...aliases].sort().join(', ')} differ from the Services ${clusterIpNames.join(', ')}`,
    );
  const bus = services['event-bus'];
  const volume = (bus?.volumes ?? []).find((v: Data) => String(v).endsWith(':/data'));
  if (!volume || !compose?.volumes?.[String(volume).split(':')[0]!])
    problems.push('compose event-bus: /data is not a named volume');
  const ingress = services.ingress;
  if (!ingress) problems.push('compose: no ingress service');
  else {
    // It routes by infra/k8s/ingress-srv.yaml itself: a copy of the paths here could only drift.
    if (ingress.environment?.ROUTES !== undefined)
      problems.push('compose ingress: ROUTES set (the router reads infra/k8s/ingress-srv.yaml)');
    // It starts once every backend the Ingress routes to is healthy.
    const byAlias = new Map(
      Object.entries(services).flatMap(([name, service]) =>
        ((service.networks?.default?.aliases ?? []) as string[]).map((alias) => [alias, name] as const),
      ),
    );
    for (const { service } of INGRESS_PATHS) {
      const backend = byAlias.get(service);
      if (!backend || ingress.depends_on?.[backend]?.condition !== 'service_healthy')
        problems.push(`compose ingress: does not wait for ${service} to be healthy`);
    }
    if (!(ingress.ports ?? []).some((p: Data) => String(p).endsWith(':3000')))
      problems.push('compose ingress: does not publish its port 3000');
  }
  return problems;
}

/** A Dockerfile's stages: name -> its lines (continuations joined). */
export function dockerStages(text: string): Map<string, string[]> {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages = new Map<string, string[]>();
  let current = '(global)';
  stages.set(current, []);
  for (const line of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(line);
    if (from) {
      current = from[2] ?? `(stage ${stages.size})`;
      stages.set(current, []);
    }
    stages.get(current)!.push(line);
  }
  return stages;
}

/** Every Dockerfile: base image argument, stages, user, port, command; the .dockerignore. */
export function checkDockerfiles(
  dockerfiles: Record<string, string>,
  dockerignore: string,
  services: string[],
): string[] {
  const problems: string[] = [];
  for (const name of services) {
    const text = dockerfiles[name];
    if (text === undefined) {
      problems.push(`${name}: no Dockerfile`);
      continue;
    }
    const where = `${name}/Dockerfile`;
    if (/NODE_EXTRA_CA_CERTS|ca-certificates\.crt/.test(text)) problems.push(`${where}: mentions a local CA`);
    const stages = dockerStages(text);
    if (!(stages.get('(global)') ?? []).some((l) => /^ARG NODE_IMAGE=node:\d+-alpine$/.test(l)))
      problems.push(`${where}: no ARG NODE_IMAGE=node:<LTS>-alpine before the first FROM`);
    const names = [...stages.keys()];
    if (names.at(-1) !== 'runtime') problems.push(`${where}: the last stage is ${names.at(-1)}, not runtime`);
    const runtime = stages.get('runtime') ?? [];
    const dev = stages.get('dev') ?? [];
    if (!dev.length) problems.push(`${where}: no dev stage`);
    if (!/^FROM \$\{NODE_IMAGE\} AS runtime$/i.test(runtime[0] ?? ''))
      problems.push(`${where}: the runtime stage does not start FROM \${NODE_IMAGE}`);
    if (runtime.some((l) => /apk add|apt-get|npm (ci|install)|python3|g\+\+/.test(l)))
      problems.push(`${where}: the runtime stage installs something`);
    if (!runtime.includes('WORKDIR /app')) problems.push(`${where}: runtime WORKDIR is not /app`);
    if (!runtime.some((l) => /^ENV .*NODE_ENV=production/.test(l)))
      problems.push(`${where}: runtime has no NODE_ENV=production`);
    const user = runtime.filter((l) => /^USER /.test(l)).at(-1);
    if (user !== 'USER node') problems.push(`${where}: runtime runs as ${user ?? 'root'}, not node`);
    for (const stage of ['runtime', 'dev']) {
      const expose = (stages.get(stage) ?? [])
        .filter((l) => l.startsWith('EXPOSE'))
        .map((l) => l.split(/\s+/)[1]);
      const port = String(COURSE[name as AppName]?.port);
      if (JSON.stringify(expose) !== JSON.stringify([port]))
        problems.push(`${where}: ${stage} EXPOSE ${expose.join(' ')}, expected ${port}`);
    }
    const entry = name === 'client' ? 'client/server.mjs' : `${name}/dist/index.js`;
    const cmd = runtime.filter((l) => l.startsWith('CMD')).at(-1);
    if (cmd !== `CMD ["node", "${entry}"]`)
      problems.push(`${where}: runtime ${cmd}, expected CMD ["node", "${entry}"]`);
    if (name === 'event-bus' && !runtime.some((l) => /^ENV .*DATA_DIR=\/data/.test(l)))
      problems.push(`${where}: runtime has no ENV DATA_DIR=/data`);
    if (!text.includes(`--workspace ${name}`) && name !== 'client')
      problems.push(`${where}: production dependencies are not installed for this workspace only`);
  }
  const ignored = dockerignore.split('\n').map((l) => l.trim());
  for (const pattern of ['**/node_modules', '**/dist', '.git']) {
    if (!ignored.includes(pattern)) problems.push(`.dockerignore: does not exclude ${pattern}`);
  }
  return problems;
}

/**
 * The `deps` stage (the one `npm ci`) is the same in every Dockerfile, so the layer is built once and
 * cached for all images; it copies the package files of every workspace by name, and no Dockerfile copies
 * the whole context (which would make every save under `skaffold dev` rebuild every image).
 */
export function checkSharedDeps(dockerfiles: Record<string, string>, workspaces: string[]): string[] {
  const problems: string[] = [];
  const expected = [
    'COPY package.json package-lock.json .npmrc ./',
    ...workspaces.map((w) => `COPY ${w}/package.json ${w}/`),
  ];
  let first: { name: string; deps: string[] } | undefined;
  for (const [name, text] of Object.entries(dockerfiles)) {
    const where = `${name}/Dockerfile`;
    const stages = dockerStages(text);
    const deps = stages.get('deps');
    if (!deps) {
      problems.push(`${where}: no deps stage`);
      continue;
    }
    const copies = deps.filter((l) => l.startsWith('COPY'));
    if (JSON.stringify([...copies].sort()) !== JSON.stringify([...expected].sort()))
      problems.push(`${where}: deps copies ${copies.join('; ')}, expected ${expected.join('; ')}`);
    first ??= { name, deps };
    if (JSON.stringify(deps) !== JSON.stringify(first.deps))
      problems.push(`${where}: the deps stage differs from ${first.name}/Dockerfile's`);
    for (const line of [...stages.values()].flat()) {
      if (/^(COPY|ADD)\s+(--\S+\s+)*\.\/?\s/.test(line) && !/--from=/.test(line))
        problems.push(`${where}: ${line} copies the whole context`);
    }
  }
  return problems;
}

/** The paths each probe asks: the app's own routes, or NATS's monitoring endpoint. */
export interface ProbePaths {
  startupProbe: string;
  livenessProbe: string;
  readinessProbe: string;
}
export const APP_PROBES: ProbePaths = {
  startupProbe: '/healthz',
  livenessProbe: '/healthz',
  readinessProbe: '/readyz',
};
/**
 * As NATS's Helm chart probes it: started = healthy with JetStream recovered, alive = up with JetStream
 * enabled (so a long recovery is not restarted), ready = the server and JetStream up.
 */
export const NATS_PROBES: ProbePaths = {
  startupProbe: '/healthz',
  livenessProbe: '/healthz?js-enabled-only=true',
  readinessProbe: '/healthz?js-server-only=true',
};

/** Pod Security "restricted", resources, probes (when given their paths), image tags and pull policy. */
/** A tagged image (never `:latest`) with `IfNotPresent`: the cluster uses the local image, never pulls it. */
function imageProblems(where: string, container: Data): string[] {
  const problems: string[] = [];
  const image = String(container.image ?? '');
  if (!/:[^:/]+$/.test(image)) problems.push(`${where}: image ${image} has no tag`);
  else if (image.endsWith(':latest')) problems.push(`${where}: image ${image} is :latest`);
  if (container.imagePullPolicy !== 'IfNotPresent')
    problems.push(`${where}: imagePullPolicy is not IfNotPresent`);
  return problems;
}

/**
 * The lectures' files (infra/lessons) as the lectures write them: the Pod `posts` and the Deployment
 * `posts-depl`, one container `posts` each, a tagged image with `IfNotPresent`. Their hardening is a later
 * step (infra/k8s), so it is not asked here.
 */
export function checkLessons(lessons: K8sObject[]): string[] {
  const problems: string[] = [];
  const pod = named(lessons, 'Pod', 'posts')?.object;
  const deployment = named(lessons, 'Deployment', 'posts-depl')?.object;
  if (!pod) problems.push('infra/lessons: no Pod posts');
  if (!deployment) problems.push('infra/lessons: no Deployment posts-depl');
  for (const { name, spec } of podSpecs(lessons)) {
    const containers: Data[] = spec?.containers ?? [];
    if (containers.length !== 1 || containers[0].name !== 'posts')
      problems.push(`${name}: not one container named posts`);
    for (const container of containers)
      problems.push(...imageProblems(`${name} container ${container.name}`, container));
  }
  if (
    deployment &&
    deployment.spec?.selector?.matchLabels?.app !== deployment.spec?.template?.metadata?.labels?.app
  )
    problems.push('posts-depl: the selector does not match the pod template');
  return problems;
}

export function checkHardening(objects: K8sObject[], { probes }: { probes: ProbePaths }): string[] {
  const problems: string[] = [];
  for (const { name, spec } of podSpecs(objects)) {
    const pod = spec?.securityContext ?? {};
    if (pod.runAsNonRoot !== true) problems.push(`${name}: runAsNonRoot is not true`);
    if (pod.runAsUser !== 1000) problems.push(`${name}: runAsUser is not 1000`);
    if (pod.seccompProfile?.type !== 'RuntimeDefault')
      problems.push(`${name}: seccompProfile is not RuntimeDefault`);
    const volumes: Data[] = spec?.volumes ?? [];
    for (const container of spec?.containers ?? []) {
      const c = `${name} container ${container.name}`;
      const sc = container.securityContext ?? {};
      if (sc.allowPrivilegeEscalation !== false) problems.push(`${c}: allowPrivilegeEscalation is not false`);
      if (sc.readOnlyRootFilesystem !== true) problems.push(`${c}: readOnlyRootFilesystem is not true`);
      if (!(sc.capabilities?.drop ?? []).includes('ALL'))
        problems.push(`${c}: capabilities.drop is not [ALL]`);
      if ((sc.capabilities?.add ?? []).length > 0) problems.push(`${c}: adds capabilities`);
      if (sc.privileged) problems.push(`${c}: privileged`);
      if (sc.runAsUser === 0) problems.push(`${c}: runs as root`);
      for (const kind of ['requests', 'limits']) {
        for (const resource of ['cpu', 'memory']) {
          if (!container.resources?.[kind]?.[resource]) problems.push(`${c}: no ${kind}.${resource}`);
        }
      }
      problems.push(...imageProblems(c, container));
      const tmp = (container.volumeMounts ?? []).find((m: Data) => m.mountPath === '/tmp');
      if (!tmp || !volumes.some((v) => v.name === tmp.name && v.emptyDir))
        problems.push(`${c}: no emptyDir at /tmp`);
      for (const [probe, path] of Object.entries(probes)) {
        if (container[probe]?.httpGet?.path !== path) problems.push(`${c}: no ${probe} on ${path}`);
      }
    }
  }
  return problems;
}

/** The event bus: one replica, Recreate, its log on a PersistentVolumeClaim at /data, writable by uid 1000. */
export function checkEventBusStorage(k8s: K8sObject[]): string[] {
  const problems: string[] = [];
  const bus = named(k8s, 'Deployment', 'event-bus-depl')?.object;
  if (!bus) return ['no Deployment event-bus-depl'];
  if (bus.spec?.replicas !== 1) problems.push('event-bus-depl: replicas is not 1');
  if (bus.spec?.strategy?.type !== 'Recreate') problems.push('event-bus-depl: strategy is not Recreate');
  const pod = bus.spec?.template?.spec;
  if (pod?.securityContext?.fsGroup !== 1000) problems.push('event-bus-depl: fsGroup is not 1000');
  const mount = (pod?.containers?.[0]?.volumeMounts ?? []).find((m: Data) => m.mountPath === '/data');
  const volume = (pod?.volumes ?? []).find((v: Data) => v.name === mount?.name);
  const claim = volume?.persistentVolumeClaim?.claimName;
  if (!claim) problems.push('event-bus-depl: /data is not a PersistentVolumeClaim');
  else if (!named(k8s, 'PersistentVolumeClaim', claim))
    problems.push(`event-bus-depl: no PersistentVolumeClaim ${claim}`);
  const dataDir = (pod?.containers?.[0]?.env ?? []).find((e: Data) => e.name === 'DATA_DIR')?.value;
  if (dataDir !== '/data') problems.push(`event-bus-depl: DATA_DIR is ${dataDir}, not /data`);
  return problems;
}

/** The Deployments that take the transport's variables: the four services and the bus (not the client). */
export const TRANSPORT_APPS = ['posts', 'comments', 'query', 'moderation', 'event-bus'] as const;
/** The ConfigMap they take them from; infra/k8s has the `http` one, infra/nats the `nats` one. */
export const TRANSPORT_CONFIG = 'event-transport';
/**
 * The NATS cluster of the `nats` profile: a StatefulSet of three nodes, its headless Service (a DNS name per
 * pod, for the routes and the clients), the course-style Service nats-srv, the server's ConfigMap.
 */
export const NATS = {
  statefulSet: 'nats',
  headless: 'nats-headless',
  service: 'nats-srv',
  config: 'nats-config',
  nodes: 3,
  client: 4222,
  cluster: 6222,
  monitor: 8222,
};

/** A node's DNS name, `<statefulset>-<ordinal>.<headless Service>`, as its StatefulSet gives it. */
export const nodeHost = (index: number) => `${NATS.statefulSet}-${index}.${NATS.headless}`;

/** The pod a `<statefulset>-<ordinal>.<service>` host names, or why it names none. */
function checkNodeHost(objects: K8sObject[], where: string, host: string): string[] {
  const match = /^(.+)-(\d+)\.([^.]+)$/.exec(host);
  const set = match && named(objects, 'StatefulSet', match[1]!)?.object;
  if (!match || !set) return [`${where}: ${host} is neither a Service nor a pod of a StatefulSet`];
  if (set.spec?.serviceName !== match[3])
    return [`${where}: ${host}: StatefulSet ${match[1]} names its pods under ${set.spec?.serviceName}`];
  if (Number(match[2]) >= Number(set.spec?.replicas ?? 1))
    return [`${where}: ${host}: StatefulSet ${match[1]} has ${set.spec?.replicas} pods`];
  const headless = named(objects, 'Service', match[3]!)?.object;
  if (headless?.spec?.clusterIP !== 'None')
    return [`${where}: ${host}: ${match[3]} is not a headless Service`];
  if (!(headless.spec?.ports ?? []).some((p: Data) => p.port === NATS.client))
    return [`${where}: ${host}: Service ${match[3]} has no port ${NATS.client}`];
  return [];
}

/**
 * A NATS URL, or a comma-separated list of them: each `nats://<host>:<client port>` (not the monitoring
 * port, which speaks HTTP), the host a Service of NATS or a pod of its StatefulSet by its DNS name.
 */
export function checkNatsUrl(objects: K8sObject[], where: string, value: string): string[] {
  return value.split(',').flatMap((entry) => {
    const url = entry.trim();
    if (!/^nats:\/\/[^/]+$/.test(url)) return [`${where}: "${url}" is not nats://host:port`];
    const { hostname, port } = new URL(url);
    if (Number(port || NATS.client) !== NATS.client)
      return [`${where}: port ${port} is not the client port ${NATS.client}`];
    if (hostname.includes('.')) return checkNodeHost(objects, where, hostname);
    return checkUrl(objects, where, `nats://${hostname}:${Number(port || NATS.client)}`, 'nats');
  });
}

/** A NATS stream name: no whitespace, no `.`, `*`, `>` (subject tokens), no path separators. */
const STREAM_NAME = /^[^\s.*>/\\]+$/;

/**
 * The transport of one deploy (`http`: infra/k8s; `nats`: the profile's files, in the order they are
 * applied): one ConfigMap event-transport saying it, with documented variables only; every one of the five
 * Deployments reads it with `envFrom` (optional: applied alone, as in the lectures, a Deployment starts on
 * the code's default) and sets none of those variables itself (that would override the ConfigMap); with
 * nats, NATS_URL (given, or the documented default) is a Service of NATS and the ConfigMap comes before the
 * Deployments (a pod started before it exists would run on http).
 */
export function checkTransport(
  objects: K8sObject[],
  transport: 'http' | 'nats',
  documented: Record<string, string>,
): string[] {
  const problems: string[] = [];
  const configs = kindOf(objects, 'ConfigMap').filter((o) => o.object.metadata?.name === TRANSPORT_CONFIG);
  if (configs.length !== 1)
    problems.push(`ConfigMap ${TRANSPORT_CONFIG}: ${configs.length} of them, expected one`);
  const config = configs[0];
  const data: Record<string, string> = config?.object.data ?? {};
  const where = `ConfigMap ${TRANSPORT_CONFIG}`;
  if (config && data.EVENT_TRANSPORT !== transport)
    problems.push(`${where}: EVENT_TRANSPORT is ${data.EVENT_TRANSPORT}, expected ${transport}`);
  for (const name of Object.keys(data)) {
    if (!(name in documented)) problems.push(`${where}: ${name} is not a variable of docs/event-bus.md`);
  }
  if (transport === 'nats') {
    // What the profile sets, and the code's default: a client given no NATS_URL must find NATS too.
    const urls = new Set([data.NATS_URL ?? documented.NATS_URL ?? '', documented.NATS_URL ?? '']);
    for (const url of urls) problems.push(...checkNatsUrl(objects, `${where} NATS_URL`, url));
    const stream = data.NATS_STREAM ?? documented.NATS_STREAM ?? '';
    if (!STREAM_NAME.test(stream)) problems.push(`${where}: NATS_STREAM "${stream}" is not a stream name`);
  }
  for (const app of TRANSPORT_APPS) {
    const { deployment } = COURSE[app];
    const index = objects.findIndex(
      (o) => o.object?.kind === 'Deployment' && o.object.metadata?.name === deployment,
    );
    if (index < 0) {
      problems.push(`no Deployment ${deployment}`);
      continue;
    }
    const container = objects[index]!.object.spec?.template?.spec?.containers?.[0] ?? {};
    const from = (container.envFrom ?? []).find((e: Data) => e.configMapRef?.name === TRANSPORT_CONFIG);
    if (!from) problems.push(`Deployment ${deployment}: no envFrom ConfigMap ${TRANSPORT_CONFIG}`);
    else if (from.configMapRef.optional !== true)
      problems.push(`Deployment ${deployment}: envFrom ${TRANSPORT_CONFIG} is not optional`);
    for (const env of container.env ?? []) {
      if (env.name in documented)
        problems.push(`Deployment ${deployment}: sets ${env.name} itself, over the ConfigMap's`);
    }
    if (transport === 'nats' && config && objects.indexOf(config) > index)
      problems.push(`Deployment ${deployment}: applied before ConfigMap ${TRANSPORT_CONFIG}`);
  }
  return problems;
}

/**
 * The code and the manifests use the same variables: once the code reads EVENT_TRANSPORT, it reads every
 * variable docs/event-bus.md lists (the manifests' are checked against that list), and every
 * `nats://<host>:<port>` it names, but for the local machine's, is a Service of NATS in `objects`.
 */
export function checkTransportCode(
  objects: K8sObject[],
  documented: Record<string, string>,
  sources: { file: string; text: string }[],
): string[] {
  const problems: string[] = [];
  const all = sources.map((s) => s.text).join('\n');
  if (/\bEVENT_TRANSPORT\b/.test(all)) {
    for (const name of Object.keys(documented)) {
      if (!new RegExp(`\\b${name}\\b`).test(all))
        problems.push(`the code reads EVENT_TRANSPORT but not ${name}, which docs/event-bus.md lists`);
    }
  }
  for (const { file, text } of sources) {
    // Real addresses only (a host, perhaps a port number): a placeholder such as `nats://host:port` in a
    // message is not one.
    for (const [, url] of text.matchAll(/['"`](nats:\/\/[a-z0-9.-]+(?::\d+)?)['"`]/gi)) {
      if (/^nats:\/\/(127\.0\.0\.1|localhost|\[::1\])(:|$)/.test(url!)) continue;
      problems.push(...checkNatsUrl(objects, `${file} ${url}`, url!));
    }
  }
  return problems;
}
