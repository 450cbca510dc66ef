import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TOKEN_PATTERN } from '@blog/common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Data, readYaml } from './support/files.js';

/**
 * The `nats` profile's deploy hook, run for real: its exact sh command from skaffold.yaml, as skaffold runs
 * a host hook (argv as written, the environment plus SKAFFOLD_KUBE_CONTEXT), with a stand-in `kubectl`
 * first on PATH that records its arguments and answers as kubectl does: `get secret` exits 1 with
 * "NotFound" while the Secret is absent, 0 once it is there; `create secret` makes it.
 */

const KUBECTL = `#!/bin/sh
for arg in "$@"; do printf '%s\\037' "$arg"; done >> "$KUBECTL_CALLS"
printf '\\n' >> "$KUBECTL_CALLS"
case " $* " in
  *" get secret event-bus-token "*)
    if [ -f "$KUBECTL_SECRET" ]; then echo 'NAME TYPE DATA AGE'; exit 0; fi
    echo 'Error from server (NotFound): secrets "event-bus-token" not found' >&2; exit 1 ;;
  *" create secret generic event-bus-token "*)
    : > "$KUBECTL_SECRET"; echo 'secret/event-bus-token created'; exit 0 ;;
esac
echo "kubectl stand-in: unexpected call: $*" >&2; exit 3
`;

let dir: string;
let hooks: Data[];

beforeAll(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'skaffold-hook-'));
  writeFileSync(path.join(dir, 'kubectl'), KUBECTL);
  chmodSync(path.join(dir, 'kubectl'), 0o755);
  const nats = readYaml('skaffold.yaml').profiles.find((p: Data) => p.name === 'nats');
  hooks = nats?.deploy?.kubectl?.hooks?.before ?? [];
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the hook of `os` as skaffold would; what kubectl was called with, and what the hook printed. */
function runHook(
  os: string,
  { secretExists = false, context }: { secretExists?: boolean; context?: string },
) {
  const hook = hooks.find((h) => (h.host?.os ?? []).includes(os))?.host;
  if (!hook) throw new Error(`no before-deploy host hook for ${os}`);
  const calls = path.join(dir, 'calls');
  const secret = path.join(dir, 'secret');
  rmSync(calls, { force: true });
  rmSync(secret, { force: true });
  if (secretExists) writeFileSync(secret, '');
  const [command, ...args] = hook.command as string[];
  return new Promise<{ code: number; output: string; calls: string[][]; created: boolean }>((resolve) => {
    execFile(
      command!,
      args,
      {
        env: {
          ...process.env,
          PATH: `${dir}${path.delimiter}${process.env.PATH}`,
          KUBECTL_CALLS: calls,
          KUBECTL_SECRET: secret,
          ...(context ? { SKAFFOLD_KUBE_CONTEXT: context } : {}),
        },
      },
      (error, stdout, stderr) => {
        const lines = existsSync(calls) ? readFileSync(calls, 'utf8').split('\n').filter(Boolean) : [];
        resolve({
          code: error ? Number(error.code) : 0,
          output: stdout + stderr,
          calls: lines.map((line) => line.split('\x1f').slice(0, -1)),
          created: !secretExists && existsSync(secret),
        });
      },
    );
  });
}

const tokenOf = (call: string[]) =>
  call.find((arg) => arg.startsWith('--from-literal='))?.slice('--from-literal=EVENT_BUS_TOKEN='.length);

describe('the nats profile’s hook (sh, linux and darwin)', () => {
  it('creates the Secret event-bus-token with a random token when it is absent', async () => {
    const run = await runHook('linux', {});
    expect(run.code, run.output).toBe(0);
    expect(run.calls).toHaveLength(2);
    expect(run.calls[0]).toEqual(['get', 'secret', 'event-bus-token']);
    const create = run.calls[1]!;
    expect(create.slice(0, 4)).toEqual(['create', 'secret', 'generic', 'event-bus-token']);
    expect(create).toHaveLength(5);
    expect(create[4]).toMatch(/^--from-literal=EVENT_BUS_TOKEN=/);
    const token = tokenOf(create)!;
    expect(token).toMatch(/^[0-9a-f]{64}$/); // 32 random bytes
    expect(token).toMatch(TOKEN_PATTERN); // what the services and the bus take
    expect(run.created).toBe(true);
    expect(run.output).toContain('Secret event-bus-token: created');
    expect(run.output).not.toContain(token);
  });

  it('draws a new token each time it creates one', async () => {
    const tokens = new Set<string | undefined>();
    for (let i = 0; i < 3; i++) tokens.add(tokenOf((await runHook('linux', {})).calls[1]!));
    expect(tokens.size).toBe(3);
  });

  it('keeps a Secret that is already there: no create', async () => {
    const run = await runHook('darwin', { secretExists: true });
    expect(run.code, run.output).toBe(0);
    expect(run.calls).toEqual([['get', 'secret', 'event-bus-token']]);
    expect(run.output).toContain('Secret event-bus-token: kept');
  });

  it('asks the cluster skaffold deploys to (SKAFFOLD_KUBE_CONTEXT)', async () => {
    const run = await runHook('linux', { context: 'kind-blog' });
    expect(run.calls.map((call) => call.slice(0, 2))).toEqual([
      ['--context', 'kind-blog'],
      ['--context', 'kind-blog'],
    ]);
    expect(run.calls[1]!.slice(2, 6)).toEqual(['create', 'secret', 'generic', 'event-bus-token']);
  });

  it('fails the deploy when the Secret cannot be created', async () => {
    const failing = KUBECTL.replace("echo 'secret/event-bus-token created'; exit 0", 'exit 1');
    writeFileSync(path.join(dir, 'kubectl'), failing);
    try {
      const run = await runHook('linux', {});
      expect(run.code).not.toBe(0);
      expect(run.output).not.toContain('created, with a random');
    } finally {
      writeFileSync(path.join(dir, 'kubectl'), KUBECTL);
    }
  });
});
