import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumMissing, launchChromium } from '../scripts/src/browser.js';
import { ROOT_DIR } from '../scripts/src/process/names.js';
import { startSystem } from '../scripts/src/process/system.js';
import type { System } from '../scripts/src/process/system-types.js';

// The real thing: the five services and the router as `npm start` runs them (free ports, a temporary
// event log), the built client, and Debian's Chromium clicking and typing in it.
const missing = chromiumMissing();
if (missing) console.warn(`Skipping the browser test: ${missing}`);

/** `UPDATE_SCREENSHOT=1 npm test` refreshes the README's picture; otherwise it goes to the temp folder. */
const SCREENSHOT = process.env.UPDATE_SCREENSHOT
  ? path.join(ROOT_DIR, 'docs', 'images', 'client.png')
  : path.join(os.tmpdir(), 'blog-client.png');

let system: System;
let browser: Awaited<ReturnType<typeof launchChromium>>;
let context: BrowserContext;
let page: Page;

const card = (title: string) =>
  page.getByTestId('post-card').filter({ has: page.getByRole('heading', { name: title, exact: true }) });

describe.skipIf(missing)('the client in Chromium, against the real system', () => {
  beforeAll(async () => {
    system = await startSystem({ quiet: true, env: { LOG_LEVEL: 'warn' }, router: true });
    browser = await launchChromium();
    context = browser.context;
    page = context.pages()[0] ?? (await context.newPage());
    await page.goto(system.router!.url);
    // Set once: still there at the end means the page was never reloaded.
    // (Page code as strings: this file is compiled for Node, without the DOM's types.)
    await page.evaluate('window.loadedOnce = true');
  }, 90_000);
  afterAll(async () => {
    await browser?.close();
    await system?.stop();
  });

  it('shows the course’s page, live', async () => {
    expect(await page.getByRole('heading', { level: 1 }).allTextContents()).toEqual(['Create Post', 'Posts']);
    await page.getByTestId('event-flow').getByText('live', { exact: true }).waitFor();
  });

  it('creates a post with the keyboard alone (Tab to the Title field, type, Enter) and clears the field', async () => {
    await page.keyboard.press('Tab');
    expect(await page.evaluate('document.activeElement.id')).toBe('post-title');
    await page.keyboard.type('Typed, not clicked');
    await page.keyboard.press('Enter');
    await card('Typed, not clicked').waitFor();
    expect(await page.getByLabel('Title').inputValue()).toBe('');
  });

  it('shows the API’s error for an empty title', async () => {
    await page.getByRole('button', { name: 'Submit' }).first().click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toBe('Title is required');
  });

  it('comments, and sees moderation approve one and reject the other without a reload', async () => {
    await page.getByLabel('Title').fill('Fruit');
    await page.getByRole('button', { name: 'Submit' }).first().click();
    const fruit = card('Fruit');
    await fruit.waitFor();
    // The alert from the empty title is gone once a post was created.
    expect(await page.getByRole('alert').count()).toBe(0);

    await fruit.getByLabel('New Comment').fill('Apples are great');
    await fruit.getByRole('button', { name: 'Submit' }).click();
    await fruit.getByRole('listitem').filter({ hasText: 'Apples are great' }).waitFor();
    expect(await fruit.getByLabel('New Comment').inputValue()).toBe('');

    await fruit.getByLabel('New Comment').fill('I prefer orange');
    await fruit.getByRole('button', { name: 'Submit' }).click();
    await fruit.getByRole('listitem').filter({ hasText: 'This comment has been rejected' }).waitFor();
    expect(await fruit.getByRole('listitem').allTextContents()).toEqual([
      'Apples are great',
      'This comment has been rejected',
    ]);

    // The README's picture: the course flow, before the markup test below adds its odd-looking title.
    await page.getByTestId('event-flow').locator('tr[data-type="CommentUpdated"]').nth(1).waitFor();
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    const png = await page.screenshot({ fullPage: true });
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    writeFileSync(SCREENSHOT, png);
  });

  it('shows a post created elsewhere, and a title with markup as text', async () => {
    const title = '<img src=x onerror="window.hacked=1">';
    const response = await fetch(`${system.urls.posts}/posts/create`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ title }),
    });
    expect(response.status).toBe(201);
    const created = card(title);
    await created.waitFor();
    expect(await created.locator('img').count()).toBe(0);
    expect(await page.evaluate('window.hacked')).toBeUndefined();
  });

  it('lists the four event types in the event-flow panel, and was never reloaded', async () => {
    const panel = page.getByTestId('event-flow');
    await panel.locator('tr[data-type="CommentUpdated"]').first().waitFor();
    const types = await panel
      .locator('tbody tr')
      .evaluateAll((rows) => rows.map((row) => row.getAttribute('data-type')));
    expect(new Set(types)).toEqual(
      new Set(['PostCreated', 'CommentCreated', 'CommentModerated', 'CommentUpdated']),
    );
    expect(await page.evaluate('window.loadedOnce')).toBe(true);
  });
});
