import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** `scripts/dist/<name>.js`, as `npm run <name>` runs it after the build. */
export const scriptPath = (name: string) => path.join(ROOT, 'scripts', 'dist', `${name}.js`);

export interface ScriptRun {
  /** null when it was killed (by the timeout, say). */
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node scripts/dist/<name>.js ...args` from the root: its exit code and output, never a throw. */
export function runScript(
  name: string,
  args: string[],
  { timeoutMs, env = process.env }: { timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<ScriptRun> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [scriptPath(name), ...args],
      { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env },
      (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr }),
    ),
  );
}
