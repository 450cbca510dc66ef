/**
 * Debian's Chromium, driven by playwright-core, for the browser test and the client figures of the
 * benchmark. Never a downloaded browser: only `/usr/bin/chromium` (apt-get install chromium), started
 * with the flags that keep it off the network (this machine's network is closed) and with a fresh
 * profile each time.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Why the browser cannot run here, or undefined when it can. */
export function chromiumMissing(): string | undefined {
  return existsSync(CHROMIUM_PATH)
    ? undefined
    : `${CHROMIUM_PATH} not found: install it with \`apt-get install -y --no-install-recommends chromium\``;
}

const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/**
 * A new Chromium with an empty profile; `close()` ends it and removes the profile. `args` adds flags, such
 * as `--host-resolver-rules=MAP posts.com 127.0.0.1:8080` to reach a host name as a hosts file would.
 */
export async function launchChromium(
  options: { width?: number; height?: number; args?: string[] } = {},
): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(path.join(os.tmpdir(), 'blog-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [...ARGS, ...(options.args ?? [])],
    viewport: { width: options.width ?? 1200, height: options.height ?? 900 },
  });
  return {
    context,
    async close() {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
