/** How retries wait: `firstMs` doubling after each failure, up to `maxMs`. */
export interface BackoffOptions {
  /** The wait after the first failure. */
  firstMs: number;
  /** The cap: no wait is longer. */
  maxMs: number;
  /**
   * A random wait in the upper half of the doubled delay, so that clients failing together do not all
   * retry at the same instant.
   */
  jitter?: boolean;
}

/** Doubling stops here: 2^20 times the first wait is past any cap we use, and the number stays finite. */
const MAX_DOUBLINGS = 20;

/** The wait before retry number `attempt` (0 after the first failure): exponential, capped, maybe jittered. */
export function backoffDelay(attempt: number, { firstMs, maxMs, jitter = false }: BackoffOptions): number {
  const ceiling = Math.min(maxMs, firstMs * 2 ** Math.min(Math.max(attempt, 0), MAX_DOUBLINGS));
  return jitter ? Math.round(ceiling / 2 + (Math.random() * ceiling) / 2) : ceiling;
}
