import { afterEach, describe, expect, it, vi } from 'vitest';
import { backoffDelay } from './backoff.js';

describe('backoffDelay', () => {
  afterEach(() => vi.restoreAllMocks());

  it('doubles from the first delay after each failure', () => {
    const delays = [0, 1, 2, 3].map((attempt) => backoffDelay(attempt, { firstMs: 100, maxMs: 10_000 }));
    expect(delays).toEqual([100, 200, 400, 800]);
  });

  it('never waits longer than the cap', () => {
    expect(backoffDelay(7, { firstMs: 100, maxMs: 5000 })).toBe(5000);
    expect(backoffDelay(10_000, { firstMs: 100, maxMs: 5000 })).toBe(5000);
  });

  it('treats a negative attempt as the first', () => {
    expect(backoffDelay(-1, { firstMs: 50, maxMs: 1000 })).toBe(50);
  });

  it('with jitter, waits between half the delay and the whole of it', () => {
    vi.spyOn(Math, 'random').mockReturnValueOnce(0).mockReturnValueOnce(0.999_999);
    const options = { firstMs: 100, maxMs: 10_000, jitter: true };
    expect(backoffDelay(2, options)).toBe(200);
    expect(backoffDelay(2, options)).toBe(400);
  });

  it('with jitter, stays within the cap', () => {
    for (let i = 0; i < 100; i++) {
      const delay = backoffDelay(40, { firstMs: 100, maxMs: 1000, jitter: true });
      expect(delay).toBeGreaterThanOrEqual(500);
      expect(delay).toBeLessThanOrEqual(1000);
    }
  });
});
