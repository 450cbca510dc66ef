import type { IncomingMessage, ServerResponse } from 'node:http';

/** A route's parameters (`:id` of `/posts/:id/comments`), decoded, as Express gives them in `req.params`. */
export type RouteParams = Record<string, string>;
export type RawHandler = (req: IncomingMessage, res: ServerResponse, params?: RouteParams) => void;
/** `METHOD /path` to its handler; a path may name parameters (`/posts/:id/comments`). */
export type RawRoutes = Record<string, RawHandler>;

interface PatternRoute {
  method: string;
  pattern: RegExp;
  names: string[];
  handler: RawHandler;
}

/** The raw routes, looked up as node:http gets a request: exact paths first, then those with parameters. */
export interface RawRouteTable {
  exact: Map<string, RawHandler>;
  patterns: PatternRoute[];
}

export function rawRouteTable(routes: RawRoutes): RawRouteTable {
  const table: RawRouteTable = { exact: new Map(), patterns: [] };
  for (const [route, handler] of Object.entries(routes)) {
    const [method, path] = route.split(' ') as [string, string];
    if (!path.includes('/:')) {
      table.exact.set(route, handler);
      continue;
    }
    const names: string[] = [];
    const source = path
      .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
      .replace(/\/:(\w+)/g, (_match, name: string) => {
        names.push(name);
        return '/([^/]+)';
      });
    // As Express matches by default: any letter case, and a trailing slash allowed.
    table.patterns.push({ method, pattern: new RegExp(`^${source}/?$`, 'i'), names, handler });
  }
  return table;
}

/** The handler of `method path` and its parameters, or undefined: Express serves the request then. */
export function findRawRoute(
  table: RawRouteTable,
  method: string,
  path: string,
): { handler: RawHandler; params?: RouteParams } | undefined {
  const handler = table.exact.size > 0 ? table.exact.get(`${method} ${path}`) : undefined;
  if (handler) return { handler };
  for (const route of table.patterns) {
    if (route.method !== method) continue;
    const match = route.pattern.exec(path);
    if (!match) continue;
    // A parameter that does not decode is left to Express, which answers its 400 for it.
    const params = routeParams(route.names, match);
    return params && { handler: route.handler, params };
  }
  return undefined;
}

/** Decoded as Express decodes them; undefined if one is not valid percent-encoding. */
function routeParams(names: string[], match: RegExpExecArray): RouteParams | undefined {
  const params: RouteParams = {};
  try {
    names.forEach((name, index) => (params[name] = decodeURIComponent(match[index + 1]!)));
  } catch {
    return undefined;
  }
  return params;
}
