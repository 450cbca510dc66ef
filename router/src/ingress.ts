/**
 * Which backend ingress-nginx would choose for a request, read from `infra/k8s/ingress-srv.yaml`: the
 * local router (router.ts) routes by this, so http://localhost:3000 and posts.com cannot drift apart.
 *
 * What ingress-nginx does, and so what this does (controller sources: internal/ingress/controller/
 * controller.go, location.go and template/template.go; docs: user-guide/ingress-path-matching.md):
 *
 * 1. With `nginx.ingress.kubernetes.io/use-regex: "true"` (or a `rewrite-target`) on the host, every path
 *    of the host becomes a case-insensitive regex location anchored at the start: `location ~* "^<path>"`,
 *    whatever its pathType. Prefix paths are left as they are (no `/posts` + `/posts/` split), and an
 *    Exact path is a regex prefix too.
 * 2. Without it, a Prefix path `/a` becomes the prefix location `/a/` plus the exact location `= /a`, an
 *    Exact path `= /a`, an ImplementationSpecific path a plain prefix location `/a`.
 * 3. Locations are sorted by path, descending, then (stable) by path length, descending, and written in
 *    that order. nginx tries the exact locations, then the longest prefix, then the regexes in the order
 *    written, the first match winning (with regexes on, only that last step is left).
 * 4. nginx matches the decoded, normalized path (no query string, `%XX` decoded, `//` merged, `.` and
 *    `..` resolved). No match: the default backend, a 404.
 *
 * The Host of the rule (posts.com) is not checked: locally the app is at localhost.
 */
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

export interface IngressLocation {
  /** The path as written in the Ingress. */
  ingressPath: string;
  pathType: 'Prefix' | 'Exact' | 'ImplementationSpecific';
  /** The location's path after ingress-nginx's changes (rule 2), which the sort uses. */
  path: string;
  /** How nginx matches it: `~*` regex, `=` exact, or a plain prefix. */
  modifier: '~*' | '=' | 'prefix';
  /** The backend, as `service:port`. */
  backend: string;
  service: string;
  port: number;
  regex?: RegExp;
}

export interface IngressTable {
  name: string;
  hosts: string[];
  regex: boolean;
  /** In the order nginx would write them (rule 3). */
  locations: IngressLocation[];
}

export class IngressError extends Error {
  override name = 'IngressError';
}

interface RawPath {
  path?: unknown;
  pathType?: unknown;
  backend?: { service?: { name?: unknown; port?: { number?: unknown } } };
}

/** Reads every Ingress of a manifest file (one host's rules merged: see the note above). */
export function readIngress(file: string): IngressTable {
  return parseIngress(readFileSync(file, 'utf8'), file);
}

export function parseIngress(text: string, source = 'the Ingress'): IngressTable {
  const documents = parseAllDocuments(text);
  const ingresses = documents
    .map((document) => {
      if (document.errors.length > 0) throw new IngressError(`${source}: ${document.errors[0]!.message}`);
      return document.toJS() as Record<string, unknown> | null;
    })
    .filter((object) => object?.kind === 'Ingress') as Array<{
    metadata?: { name?: string; annotations?: Record<string, unknown> };
    spec?: { rules?: Array<{ host?: string; http?: { paths?: RawPath[] } }> };
  }>;
  if (ingresses.length === 0) throw new IngressError(`${source}: no Ingress found`);

  const annotations = Object.assign({}, ...ingresses.map((ingress) => ingress.metadata?.annotations ?? {}));
  const regex =
    String(annotations['nginx.ingress.kubernetes.io/use-regex']) === 'true' ||
    annotations['nginx.ingress.kubernetes.io/rewrite-target'] !== undefined;

  const locations: IngressLocation[] = [];
  const hosts: string[] = [];
  for (const ingress of ingresses) {
    for (const rule of ingress.spec?.rules ?? []) {
      if (rule.host) hosts.push(rule.host);
      for (const [index, raw] of (rule.http?.paths ?? []).entries()) {
        locations.push(...locationsOf(raw, regex, `${source}: path #${index + 1}`));
      }
    }
  }
  return {
    name: ingresses.map((ingress) => ingress.metadata?.name ?? '?').join(', '),
    hosts,
    regex,
    locations: sortLikeIngressNginx(locations),
  };
}

function locationsOf(raw: RawPath, regex: boolean, where: string): IngressLocation[] {
  const ingressPath = raw.path === undefined ? '/' : raw.path;
  const pathType = raw.pathType;
  const service = raw.backend?.service?.name;
  const port = raw.backend?.service?.port?.number;
  if (typeof ingressPath !== 'string' || !ingressPath.startsWith('/')) {
    throw new IngressError(`${where}: path must be a string starting with "/"`);
  }
  if (pathType !== 'Prefix' && pathType !== 'Exact' && pathType !== 'ImplementationSpecific') {
    throw new IngressError(`${where}: pathType must be Prefix, Exact or ImplementationSpecific`);
  }
  if (typeof service !== 'string' || typeof port !== 'number') {
    throw new IngressError(`${where}: backend.service.name and backend.service.port.number are required`);
  }
  const base = { ingressPath, pathType, service, port, backend: `${service}:${port}` } as const;
  if (regex) {
    let pattern: RegExp;
    try {
      pattern = new RegExp(`^${ingressPath}`, 'i');
    } catch (err) {
      throw new IngressError(
        `${where}: ${ingressPath} is not a regular expression (${(err as Error).message})`,
      );
    }
    return [{ ...base, path: ingressPath, modifier: '~*', regex: pattern }];
  }
  if (pathType === 'Exact') return [{ ...base, path: ingressPath, modifier: '=' }];
  if (pathType === 'Prefix' && ingressPath !== '/') {
    const prefix = ingressPath.endsWith('/') ? ingressPath : `${ingressPath}/`;
    const exact: IngressLocation[] =
      prefix === ingressPath ? [] : [{ ...base, path: ingressPath, modifier: '=' }];
    return [{ ...base, path: prefix, modifier: 'prefix' }, ...exact];
  }
  return [{ ...base, path: ingressPath, modifier: 'prefix' }];
}

/** ingress-nginx's order: by path descending, then by length descending (both stable). */
export function sortLikeIngressNginx<T extends { path: string }>(locations: T[]): T[] {
  return [...locations]
    .sort((a, b) => (a.path > b.path ? -1 : a.path < b.path ? 1 : 0))
    .sort((a, b) => b.path.length - a.path.length);
}

/**
 * The path nginx matches locations against: the part before `?`, `%XX` decoded, `//` merged, `.` and
 * `..` segments resolved. `undefined` where nginx answers 400 (bad encoding, `..` above the root).
 */
export function normalizePath(url: string): string | undefined {
  const end = url.search(/[?#]/);
  const raw = end === -1 ? url : url.slice(0, end);
  if (!raw.startsWith('/')) return undefined;
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  if (decoded.includes('\0')) return undefined;
  const segments: string[] = [];
  const parts = decoded.split('/').slice(1);
  for (const [index, part] of parts.entries()) {
    const last = index === parts.length - 1;
    if (part === '..') {
      if (segments.length === 0) return undefined;
      segments.pop();
      if (last) segments.push('');
    } else if (part === '.') {
      if (last) segments.push('');
    } else if (part !== '' || last) {
      segments.push(part);
    }
  }
  return `/${segments.join('/')}`;
}

/** The location nginx would pick for this request URL, or undefined (the default backend: 404). */
export function chooseLocation(table: IngressTable, url: string): IngressLocation | undefined {
  const path = normalizePath(url);
  if (path === undefined) return undefined;
  return matchPath(table, path);
}

export function matchPath(table: IngressTable, path: string): IngressLocation | undefined {
  const exact = table.locations.find((location) => location.modifier === '=' && location.path === path);
  if (exact) return exact;
  let longest: IngressLocation | undefined;
  for (const location of table.locations) {
    if (location.modifier !== 'prefix' || !path.startsWith(location.path)) continue;
    if (!longest || location.path.length > longest.path.length) longest = location;
  }
  const regex = table.locations.find((location) => location.modifier === '~*' && location.regex!.test(path));
  return regex ?? longest;
}
