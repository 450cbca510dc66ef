/** The client phase: its JavaScript gzipped, and the time from navigation to the post list drawn in Chromium. */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { chromiumMissing, launchChromium } from '../browser.js';
import { round, sleep } from '../harness.js';
import { ROOT_DIR } from '../process/names.js';
import type { Settings, Urls } from './options.js';
import { createPost } from './requests.js';
import { distribution, pool } from './stats.js';
import { QueryView } from './views.js';

export interface ClientResult {
  settings: Settings['client'];
  /** Each built JavaScript file of client/dist/assets, raw and gzipped (node:zlib, default level). */
  jsFiles: Array<{ file: string; bytes: number; gzipBytes: number }>;
  jsGzipKb: number;
  /** Why the page loads were not measured (no Chromium, no router), or null. */
  skipped: string | null;
  posts: number;
  /** Navigation start → the post list drawn with every post's card, one per load (cold cache). */
  loadsMs: number[];
  loadMedianMs: number | null;
}

/** The size a browser downloads: every JavaScript file of the build, gzipped, in kB (1000 bytes). */
function clientJsSize(): Pick<ClientResult, 'jsFiles' | 'jsGzipKb'> {
  const dir = path.join(ROOT_DIR, 'client', 'dist', 'assets');
  let names: string[];
  try {
    names = readdirSync(dir).filter((name) => name.endsWith('.js'));
  } catch {
    throw new Error(`${path.relative(ROOT_DIR, dir)} is missing: run \`npm run build\` first`);
  }
  if (names.length === 0)
    throw new Error(`no JavaScript in ${path.relative(ROOT_DIR, dir)}: run \`npm run build\``);
  const jsFiles = names.map((file) => {
    const content = readFileSync(path.join(dir, file));
    return { file, bytes: content.length, gzipBytes: gzipSync(content).length };
  });
  return { jsFiles, jsGzipKb: round(jsFiles.reduce((sum, f) => sum + f.gzipBytes, 0) / 1000, 1) };
}

export async function measureClient(
  urls: Urls | undefined,
  routerUrl: string | undefined,
  settings: Settings['client'],
): Promise<ClientResult> {
  const size = clientJsSize();
  const skip = (skipped: string): ClientResult => ({
    settings,
    ...size,
    skipped,
    posts: 0,
    loadsMs: [],
    loadMedianMs: null,
  });
  const missing = chromiumMissing();
  if (missing) return skip(missing);
  if (!urls || !routerUrl)
    return skip('the page loads need the router the bench starts (not with --posts/--query URLs)');

  const posts = await ensurePosts(urls, settings.minPosts);
  const browser = await launchChromium();
  try {
    const loadsMs: number[] = [];
    for (let i = 0; i < settings.loads; i++) loadsMs.push(await loadOnce(browser, routerUrl, posts));
    return { settings, ...size, skipped: null, posts, loadsMs, loadMedianMs: distribution(loadsMs).p50 };
  } finally {
    await browser.close();
  }
}

/** A page worth drawing: the posts the phases before made, or at least `minPosts`; how many there are. */
async function ensurePosts(urls: Urls, minPosts: number): Promise<number> {
  const view = new QueryView(urls.query);
  await view.poll();
  const missingPosts = Math.max(0, minPosts - Object.keys(view.posts).length);
  await pool(
    Array.from({ length: missingPosts }, (_, i) => i),
    8,
    (i) => createPost(urls, `Client post ${i}`),
  );
  await view.poll();
  return Object.keys(view.posts).length;
}

type Chromium = Awaited<ReturnType<typeof launchChromium>>;

/** One page load as a first visit: ms from navigation start to the `posts` cards drawn. */
async function loadOnce(browser: Chromium, routerUrl: string, posts: number): Promise<number> {
  const page = await browser.context.newPage();
  // Every load as a first visit: nothing from the cache.
  const cdp = await browser.context.newCDPSession(page);
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  // Noted in the page (a string: this file is not compiled for the DOM), on the animation frame the
  // last card is there: ms since navigation start. An init script, not waitForFunction, whose
  // predicate is an eval the app's Content-Security-Policy forbids (no 'unsafe-eval').
  await page.addInitScript(
    `(() => { const tick = () => { if (document.querySelectorAll('[data-testid="post-list"] [data-testid="post-card"]').length >= ${posts}) window.__drawnAt = performance.now(); else requestAnimationFrame(tick); }; requestAnimationFrame(tick); })()`,
  );
  await page.goto(routerUrl, { waitUntil: 'commit' });
  const deadline = Date.now() + 30_000;
  let drawnAt: unknown;
  while ((drawnAt = await page.evaluate('window.__drawnAt')) === undefined) {
    if (Date.now() > deadline) throw new Error(`the ${posts} posts were not drawn within 30 s`);
    await sleep(10);
  }
  await page.close();
  return round(drawnAt as number, 1);
}
