/** Running docker and docker-compose from the tests: plain child processes, output kept for messages. */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
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
    // A command that exits without reading its input closes the pipe: the EPIPE that follows says
    // nothing its exit code does not.
    child.stdin.on('error', () => undefined);
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

/**
 * The base images the real Dockerfiles are built on here (local-base-image.sh: this machine's Node, since
 * no image can be pulled), as `{ runtime, build }`: NODE_IMAGE and NODE_BUILD_IMAGE.
 */
export async function localBaseImages(): Promise<{ runtime: string; build: string }> {
  const { stdout } = await must('bash', [path.join(ROOT, 'test/deploy/local-base-image.sh')], {
    timeoutMs: 900_000,
  });
  const [runtime, build] = stdout.trim().split('\n').at(-1)!.split(' ');
  return { runtime: runtime!, build: build! };
}

/**
 * `docker build` of one stage of a Dockerfile of the repository, from the repository root (the context
 * every Dockerfile here expects), on the local base images. The classic builder: Debian's engine comes
 * without buildx, and the Dockerfiles use nothing BuildKit-only.
 */
export function buildImage(
  dockerfile: string,
  target: string,
  tag: string,
  bases: { runtime: string; build: string },
): Promise<Result> {
  return must(
    'docker',
    [
      'build',
      '--network',
      'host',
      '-f',
      dockerfile,
      '--target',
      target,
      '--build-arg',
      `NODE_IMAGE=${bases.runtime}`,
      '--build-arg',
      `NODE_BUILD_IMAGE=${bases.build}`,
      '-t',
      tag,
      '.',
    ],
    { timeoutMs: 900_000, env: { DOCKER_BUILDKIT: '0' } },
  );
}

/**
 * What skaffold's manual sync does with a saved file: a tar of it, under its path in the container,
 * unpacked by `tar xmf - -C / --no-same-owner` run in the container (skaffold runs it through
 * `kubectl exec -i`). `m` gives the file the time of the copy, so a watcher sees it change.
 */
export async function syncFile(container: string, containerPath: string, content: string): Promise<void> {
  const stage = mkdtempSync(path.join(os.tmpdir(), 'blog-sync-'));
  try {
    const relative = containerPath.replace(/^\/+/, '');
    mkdirSync(path.dirname(path.join(stage, relative)), { recursive: true });
    writeFileSync(path.join(stage, relative), content);
    await must('bash', [
      '-c',
      'tar -C "$1" -cf - "$2" | docker exec -i "$3" tar xmf - -C / --no-same-owner',
      'sync',
      stage,
      relative,
      container,
    ]);
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}
