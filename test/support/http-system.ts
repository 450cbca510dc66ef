import { afterAll, beforeAll } from 'vitest';
import { startSystem } from '../../scripts/src/process/system.js';
import type { System } from '../../scripts/src/process/system-types.js';
import { blogClient } from './client.js';

/**
 * The five services as real processes on the HTTP bus, as `npm start` runs them, for the tests of one
 * `describe`: started before them, stopped after; read `system` and `blog` inside the tests.
 */
export function httpSystemForTests(): { system: System; blog: ReturnType<typeof blogClient> } {
  const running = {} as { system: System; blog: ReturnType<typeof blogClient> };
  beforeAll(async () => {
    running.system = await startSystem({ transport: 'http', quiet: true, env: { LOG_LEVEL: 'warn' } });
    running.blog = blogClient(running.system.urls);
  });
  afterAll(() => running.system?.stop());
  return running;
}

/** The samples of one metric of a process's `/metrics` (`name{labels} value`): the labels as text, the value. */
export async function metricSamples(url: string, name: string): Promise<{ labels: string; value: number }[]> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return text
    .split('\n')
    .filter((line) => line.startsWith(`${name}{`))
    .map((line) => ({
      labels: line.slice(name.length, line.lastIndexOf('}') + 1),
      value: Number(line.split(' ').at(-1)),
    }));
}
