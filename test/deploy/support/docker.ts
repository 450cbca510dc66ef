/** Running docker and docker-compose from the tests: plain child processes, output kept for messages. */
import { spawn, spawnSync } from 'node:child_process';
import { ROOT } from './files.js';

export interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function run(
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string } = {},
): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Like run, but a non-zero exit throws with the end of the output. */
export async function must(command: string, args: string[], options: Parameters<typeof run>[2] = {}) {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    const tail = `${result.stdout}\n${result.stderr}`.trim().split('\n').slice(-40).join('\n');
    throw new Error(`${command} ${args.join(' ')} exited with ${result.code}:\n${tail}`);
  }
  return result;
}

/** Why the Docker test cannot run here, or undefined when an engine answers. */
export function dockerUnavailable(): string | undefined {
  const info = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  if (info.error) return `no docker client (${info.error.message})`;
  if (info.status !== 0)
    return `no Docker engine answers (docker info: ${info.stderr.trim().split('\n')[0]})`;
  if (!composeCommand()) return 'neither docker-compose nor `docker compose` is installed';
  if (spawnSync('debootstrap', ['--version'], { encoding: 'utf8' }).error)
    return 'debootstrap is not installed (it makes the local base image)';
  return undefined;
}

/** docker-compose (v1, Debian's) or the `docker compose` plugin. */
export function composeCommand(): string[] | undefined {
  if (spawnSync('docker-compose', ['version'], { encoding: 'utf8' }).status === 0) return ['docker-compose'];
  if (spawnSync('docker', ['compose', 'version'], { encoding: 'utf8' }).status === 0)
    return ['docker', 'compose'];
  return undefined;
}

/** `node -e SCRIPT` inside a running container: how the test talks to services that publish no port. */
export function nodeIn(container: string, script: string, timeoutMs = 30_000): Promise<Result> {
  return run('docker', ['exec', container, 'node', '-e', script], { timeoutMs });
}
