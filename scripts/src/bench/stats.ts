/** The small helpers every phase shares: the clock, a distribution of times, a bounded pool of work. */
import { percentile, round } from '../harness.js';

export const now = () => performance.now();

export interface Distribution {
  count: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank percentiles, to the hundredth. */
export function distribution(values: number[]): Distribution {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    p50: round(percentile(sorted, 0.5), 2),
    p90: round(percentile(sorted, 0.9), 2),
    p99: round(percentile(sorted, 0.99), 2),
    max: round(sorted.at(-1) ?? Number.NaN, 2),
    mean: round(sorted.reduce((sum, v) => sum + v, 0) / sorted.length, 2),
  };
}

/** Runs `fn` over `items` with at most `concurrency` at a time. */
export async function pool<T, R>(
  items: T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]!, index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  return results;
}

/** The status moderation gives a comment. */
export const moderated = (content: string) => (content.includes('orange') ? 'rejected' : 'approved');
