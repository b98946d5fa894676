// Logs into the Pipelines dashboard with a key, opens the Runs page while a run is in flight,
// checks that the run is listed with its progress bar, and saves a screenshot.
//
//   node tests/browser/dashboard.mjs <server-url> <key> <run-id> <screenshot.png>
//
// Exit 0 when every check held; 1 with one line saying which did not.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, key, runId, png] = process.argv.slice(2);
if (!url || !key || !runId || !png) {
  console.error('usage: dashboard.mjs <server-url> <key> <run-id> <screenshot.png>');
  process.exit(2);
}

// An empty profile of its own: playwright passes it to chromium as --user-data-dir.
const profile = mkdtempSync(join(tmpdir(), 'pipelines-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1400, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = browser.pages()[0] ?? await browser.newPage();

  // The dashboard without a session sends the browser to the login form.
  await page.goto(`${url}/hangfire/runs`);
  if (!page.url().includes('/login')) throw new Error(`expected the login form, got ${page.url()}`);
  await page.fill('#key', key);
  await Promise.all([page.waitForURL('**/hangfire/runs'), page.click('button[type=submit]')]);

  // The Runs page is in Hangfire's layout, in its navigation, and lists the run in flight.
  const nav = page.locator('.navbar a', { hasText: 'Runs' });
  if (await nav.count() === 0) throw new Error('no Runs item in the dashboard navigation');
  const row = page.locator(`tr[data-run-id="${runId}"]`);
  await row.waitFor({ timeout: 10000 });
  const state = (await row.locator('td').nth(2).innerText()).trim();
  if (!['running', 'gathering'].includes(state)) throw new Error(`run ${runId} is ${state}, not in flight`);
  if (await row.locator('.progress .progress-bar').count() === 0) throw new Error('the run has no progress bar');
  await page.screenshot({ path: png, fullPage: true });

  // Its tasks page lists the tasks of the run.
  await row.locator('a', { hasText: 'tasks' }).first().click();
  await page.locator('table.tasks-table tbody tr').first().waitFor({ timeout: 10000 });
  await page.screenshot({ path: png.replace(/\.png$/, '-tasks.png'), fullPage: true });
  console.log(`ok: run ${runId} listed (${state}); screenshot ${png}`);
} catch (e) {
  console.error(`dashboard check failed: ${e.message.split('\n')[0]}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
