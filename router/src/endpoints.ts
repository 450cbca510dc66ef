/**
 * The endpoints of one Service, as the kubelet and the endpoints controller keep them and ingress-nginx
 * balances over them: each backend (a pod) is in rotation once its readiness probe has passed
 * `successThreshold` times in a row, out after `failureThreshold` failures in a row, and out at once, for
 * good, when it is marked terminating. Requests go round robin over the ready ones.
 *
 * A Service given one URL and no probe (`npm start`, docker compose) has one endpoint that is always in
 * rotation, and is never probed: the router behaves as it did with a single backend.
 */
import http from 'node:http';

/** A Deployment's readinessProbe (httpGet), in milliseconds: see manifests.ts for where it is read. */
export interface ReadinessProbe {
  path: string;
  periodMs: number;
  timeoutMs: number;
  failureThreshold: number;
  successThreshold: number;
}

export interface Endpoint {
  url: URL;
  ready: boolean;
  terminating: boolean;
}

interface Tracked extends Endpoint {
  successes: number;
  failures: number;
  timer?: NodeJS.Timeout;
  probing?: http.ClientRequest;
  /** Called on every change of `ready`. */
  changed: Set<() => void>;
}

/** One probe: ready when it answers 200 to 399 within `timeoutMs`, as the kubelet's httpGet counts it. */
function probeOnce(url: URL, probe: ReadinessProbe, onRequest: (req: http.ClientRequest) => void) {
  return new Promise<boolean>((resolve) => {
    // A connection of its own each time, closed after: the kubelet keeps none open either.
    const req = http.get(new URL(probe.path, url), {
      agent: false,
      headers: { connection: 'close', 'user-agent': 'kube-probe (blog router)' },
      timeout: probe.timeoutMs,
    });
    onRequest(req);
    req.once('response', (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      resolve(status >= 200 && status < 400);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(false));
  });
}

export class EndpointPool {
  private readonly endpoints: Tracked[] = [];
  private turn = 0;
  private closed = false;

  /** `name` says which Service, in messages; without a `probe` every endpoint is always ready. */
  constructor(
    readonly name: string,
    urls: readonly string[],
    readonly probe?: ReadinessProbe,
  ) {
    for (const url of urls) this.add(url);
  }

  /** Every endpoint, terminating ones included, as it stands now. */
  list(): Endpoint[] {
    return this.endpoints.map(({ url, ready, terminating }) => ({ url, ready, terminating }));
  }

  /**
   * A new pod behind the Service: in rotation once its probe passes (at once without a probe). Probed
   * now, then every `periodMs`.
   */
  add(url: string): void {
    const parsed = new URL(url);
    if (this.find(url)) throw new Error(`${this.name}: ${parsed.origin} is already an endpoint`);
    const endpoint: Tracked = {
      url: parsed,
      ready: !this.probe,
      terminating: false,
      successes: 0,
      failures: 0,
      changed: new Set(),
    };
    this.endpoints.push(endpoint);
    if (this.probe) void this.runProbe(endpoint, this.probe);
  }

  /** Resolves once `url` is in rotation (its probe passed); rejects if it is marked terminating first. */
  whenReady(url: string): Promise<void> {
    const endpoint = this.require(url);
    return new Promise((resolve, reject) => {
      const check = () => {
        if (endpoint.terminating) reject(new Error(`${this.name}: ${endpoint.url.origin} is terminating`));
        else if (!endpoint.ready) return;
        else resolve();
        endpoint.changed.delete(check);
      };
      endpoint.changed.add(check);
      check();
    });
  }

  /** The pod is terminating: out of rotation at once, as the endpoints controller takes it out. */
  terminate(url: string): void {
    const endpoint = this.require(url);
    endpoint.terminating = true;
    this.setReady(endpoint, false);
    this.stopProbing(endpoint);
  }

  /** The pod is gone. */
  remove(url: string): void {
    const endpoint = this.require(url);
    this.terminate(url);
    this.endpoints.splice(this.endpoints.indexOf(endpoint), 1);
  }

  /** How many endpoints there are, ready or not, terminating included. */
  get size(): number {
    return this.endpoints.length;
  }

  /** How many endpoints are in rotation. */
  get readyCount(): number {
    return this.endpoints.filter((endpoint) => endpoint.ready).length;
  }

  /** The next endpoint in rotation, round robin, skipping those in `tried`; undefined when none is left. */
  next(tried: ReadonlySet<URL> = new Set()): URL | undefined {
    const count = this.endpoints.length;
    for (let step = 0; step < count; step++) {
      const endpoint = this.endpoints[(this.turn + step) % count]!;
      if (!endpoint.ready || tried.has(endpoint.url)) continue;
      this.turn = (this.turn + step + 1) % count;
      return endpoint.url;
    }
    return undefined;
  }

  /** Stops every probe. */
  close(): void {
    this.closed = true;
    for (const endpoint of this.endpoints) this.stopProbing(endpoint);
  }

  private find(url: string): Tracked | undefined {
    const origin = new URL(url).origin;
    return this.endpoints.find((endpoint) => endpoint.url.origin === origin);
  }

  private require(url: string): Tracked {
    const endpoint = this.find(url);
    if (!endpoint) throw new Error(`${this.name}: ${url} is not an endpoint`);
    return endpoint;
  }

  private setReady(endpoint: Tracked, ready: boolean): void {
    if (endpoint.ready === ready) return;
    endpoint.ready = ready;
    for (const listener of [...endpoint.changed]) listener();
  }

  private stopProbing(endpoint: Tracked): void {
    clearTimeout(endpoint.timer);
    endpoint.timer = undefined;
    endpoint.probing?.destroy();
    // Terminating is final: whoever waits for readiness hears it now.
    for (const listener of [...endpoint.changed]) listener();
  }

  private async runProbe(endpoint: Tracked, probe: ReadinessProbe): Promise<void> {
    const passed = await probeOnce(endpoint.url, probe, (req) => (endpoint.probing = req));
    endpoint.probing = undefined;
    if (this.closed || endpoint.terminating) return;
    if (passed) {
      endpoint.failures = 0;
      endpoint.successes++;
      if (endpoint.successes >= probe.successThreshold) this.setReady(endpoint, true);
    } else {
      endpoint.successes = 0;
      endpoint.failures++;
      if (endpoint.failures >= probe.failureThreshold) this.setReady(endpoint, false);
    }
    endpoint.timer = setTimeout(() => void this.runProbe(endpoint, probe), probe.periodMs);
    endpoint.timer.unref();
  }
}
