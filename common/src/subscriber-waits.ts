/** How a command's wait for its own event ended. */
export type WaitOutcome = 'applied' | 'missed' | 'stopped';

/**
 * Commands waiting for their own event to be applied (read your writes, `Subscriber.publishAndApply`):
 * each wait ends `applied` once the seq is, `missed` when told a delivery failed or after its time is up,
 * `stopped` when the subscriber stops.
 */
export class CommandWaits {
  private readonly waiters = new Set<{ seq: number; end: (outcome: WaitOutcome) => void }>();
  private stopped = false;

  /** Waits until `applied(appliedSeq)` reports `seq` or beyond, at most `timeoutMs`. */
  wait(seq: number, appliedSeq: number, timeoutMs: number): Promise<WaitOutcome> {
    if (appliedSeq >= seq) return Promise.resolve('applied');
    if (this.stopped) return Promise.resolve('stopped');
    return new Promise((resolve) => {
      const waiter = {
        seq,
        end: (outcome: WaitOutcome) => {
          clearTimeout(timer);
          this.waiters.delete(waiter);
          resolve(outcome);
        },
      };
      const timer = setTimeout(() => waiter.end('missed'), timeoutMs);
      this.waiters.add(waiter);
    });
  }

  /** Every seq up to `appliedSeq` is applied: the commands waiting for one of them answer. */
  applied(appliedSeq: number): void {
    if (this.waiters.size === 0) return;
    for (const waiter of this.waiters) if (waiter.seq <= appliedSeq) waiter.end('applied');
  }

  /** A delivery failed: the commands waiting read the log instead. */
  missed(): void {
    for (const waiter of this.waiters) waiter.end('missed');
  }

  stop(): void {
    this.stopped = true;
    for (const waiter of this.waiters) waiter.end('stopped');
  }
}
