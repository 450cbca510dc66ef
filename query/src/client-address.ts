import type { IncomingMessage } from 'node:http';
import net from 'node:net';

/**
 * Who a request comes from, for limits per client (query's live streams). Behind a proxy every request
 * comes from the proxy's address, so the one the proxy saw is taken from its headers, but only when the
 * request came from a trusted proxy: anyone else could write those headers to pass for someone else.
 *
 * Both proxies in front of query set `X-Real-IP` to the address they saw, replacing whatever the client
 * sent: the local router (`npm start`, docker-compose's ingress) and ingress-nginx. Without it, the last
 * entry of `X-Forwarded-For` is the one the nearest proxy added.
 *
 * Trusted by default: loopback and the private ranges. That is the router under `npm start` and compose,
 * and in Kubernetes ingress-nginx's pod, whose address is in the cluster's pod range (private, and not
 * known in advance); the NetworkPolicies let nothing else reach query's port, and query's Service is not
 * exposed outside the cluster. A client that could reach query directly from such an address could pass
 * for many clients and get past the limit per address, never past the global one. `TRUSTED_PROXIES`
 * narrows the list (a pod range, one address), or `none` trusts no one.
 */
export const DEFAULT_TRUSTED_PROXIES = [
  '127.0.0.0/8',
  '::1/128',
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  'fc00::/7',
];

/**
 * 4 or 6 for an address a BlockList takes, else 0. Read at start, so without `net.isIP`, whose first IPv6
 * test compiles a large regular expression: an IPv6 address is checked by parsing it as the BlockList will.
 */
function rangeFamily(address: string): 0 | 4 | 6 {
  if (net.isIPv4(address)) return 4;
  if (!address.includes(':')) return 0;
  try {
    new net.SocketAddress({ address, family: 'ipv6' });
    return 6;
  } catch {
    return 0;
  }
}

/** `a.b.c.d`, `a.b.c.d/n`, an IPv6 address or range: the problem with `entry`, if any. */
function rangeProblem(entry: string): string | undefined {
  const [address, bits, ...rest] = entry.split('/');
  const family = rangeFamily(address ?? '');
  if (rest.length > 0 || family === 0) return `"${entry}" is not an address or address/prefix`;
  const max = family === 4 ? 32 : 128;
  if (bits !== undefined && !(/^\d{1,3}$/.test(bits) && Number(bits) <= max)) {
    return `"${entry}": the prefix must be 0 to ${max}`;
  }
  return undefined;
}

/** The problems with a list of ranges as TRUSTED_PROXIES takes it (`none`, or comma-separated). */
export function trustedProxiesProblems(value: string): string[] {
  if (value.trim() === 'none') return [];
  return value
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean)
    .flatMap((entry) => rangeProblem(entry) ?? []);
}

/** The addresses trusted as proxies, from a list checked by trustedProxiesProblems. */
export function trustedProxies(value: string | string[]): net.BlockList {
  const list = new net.BlockList();
  const entries = Array.isArray(value) ? value : value.trim() === 'none' ? [] : value.split(',');
  for (const entry of entries.map((e) => e.trim()).filter(Boolean)) {
    const [address, bits] = entry.split('/') as [string, string | undefined];
    const family = rangeFamily(address) === 4 ? 'ipv4' : 'ipv6';
    list.addSubnet(address, bits === undefined ? (family === 'ipv4' ? 32 : 128) : Number(bits), family);
  }
  return list;
}

/** An IPv4 address seen on an IPv6 socket (`::ffff:127.0.0.1`) as itself, so one client counts once. */
function plain(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** The client's address: the socket's, or, from a trusted proxy, the one it passed on. */
export function clientAddress(req: IncomingMessage, trusted: net.BlockList): string {
  const peer = plain(req.socket.remoteAddress ?? '');
  const family = net.isIP(peer);
  if (family === 0 || !trusted.check(peer, family === 4 ? 'ipv4' : 'ipv6')) return peer;
  const realIp = String(req.headers['x-real-ip'] ?? '').trim();
  const forwarded = String(req.headers['x-forwarded-for'] ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .at(-1);
  const passedOn = [realIp, forwarded].find((candidate) => candidate && net.isIP(plain(candidate)));
  return passedOn ? plain(passedOn) : peer;
}
