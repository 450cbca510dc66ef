import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ManagedProcess, type ManagedProcessOptions } from '@blog/common/process';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/**
 * One process of the blog from its built `dist/` (`dir`: posts, event-bus, ...), listening on 127.0.0.1:
 * `port`, with `env` over this process's environment; ready once `readyPath` (default `/readyz`) answers 200.
 */
export function blogProcess(
  dir: string,
  port: number,
  env: NodeJS.ProcessEnv,
  {
    readyPath = '/readyz',
    ...options
  }: Partial<Pick<ManagedProcessOptions, 'name' | 'stopTimeoutMs'>> & {
    readyPath?: string;
  } = {},
): { url: string; process: ManagedProcess } {
  const url = `http://127.0.0.1:${port}`;
  const child = new ManagedProcess({
    name: dir,
    command: process.execPath,
    args: ['dist/index.js'],
    cwd: path.join(ROOT, dir),
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    ready: `${url}${readyPath}`,
    ...options,
  });
  return { url, process: child };
}
