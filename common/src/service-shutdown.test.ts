import { describe, expect, it } from 'vitest';
import { ConfigError, readConfig } from './config.js';
import { shutdownConfig } from './service.js';

describe('SHUTDOWN_DELAY_MS', () => {
  const read = (value: string | undefined) => readConfig(shutdownConfig(), { SHUTDOWN_DELAY_MS: value });

  it('is 0 when unset or empty, and the milliseconds given otherwise', () => {
    expect(read(undefined).SHUTDOWN_DELAY_MS).toBe(0);
    expect(read('').SHUTDOWN_DELAY_MS).toBe(0);
    expect(read('0').SHUTDOWN_DELAY_MS).toBe(0);
    expect(read('10000').SHUTDOWN_DELAY_MS).toBe(10_000);
  });

  it.each(['-1', '1.5', 'ten', '3600001'])('refuses %s, naming the variable', (value) => {
    expect(() => read(value)).toThrow(ConfigError);
    expect(() => read(value)).toThrow(`SHUTDOWN_DELAY_MS="${value}"`);
  });
});
