// Opens a run's report.html from disk in headless Chromium with the network cut off, checks
// that the timeline and the charts drew (shapes of non-zero size), and saves a screenshot.
//
//   node tests/browser/report.mjs <report.html> <screenshot.png> <bars> [resources] [cached=N]
//
// <bars>: the timeline bars expected; "resources": the CPU and memory charts must be there too;
// "cached=N": N of the bars are grey bars of steps taken from the cache, and the table of
// cached steps names each (when every bar is cached, nothing ran: no duration bar, no slowest row).
// Exit 0 when every check held; 1 with one line saying which did not.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

const [html, png, bars, ...options] = process.argv.slice(2);
if (!html || !png || !bars) {
  console.error('usage: report.mjs <report.html> <screenshot.png> <bars> [resources] [cached=N]');
  process.exit(2);
}
const resources = options.includes('resources');
const cached = Number((options.find(o => o.startsWith('cached=')) ?? 'cached=0').slice('cached='.length));
const ran = Number(bars) - cached;

const profile = mkdtempSync(join(tmpdir(), 'pipelines-chromium-'));
const browser = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  headless: true,
  offline: true,
  viewport: { width: 1200, height: 900 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
});
try {
  const page = browser.pages()[0] ?? await browser.newPage();
  const requests = [];
  page.on('request', r => { if (!r.url().startsWith('file:')) requests.push(r.url()); });
  await page.goto(pathToFileURL(html).href);

  // Drawn means laid out: a shape with a real size on the page, not just present in the markup.
  const drawn = async (selector) => page.locator(selector).evaluateAll(els =>
    els.filter(e => { const b = e.getBoundingClientRect(); return b.width > 0 && b.height > 0; }).length);
  const timeline = await drawn('#timeline rect.bar');
  if (timeline !== Number(bars)) throw new Error(`the timeline drew ${timeline} bars, expected ${bars}`);
  if (await drawn('#timeline g.lane') < 1) throw new Error('the timeline has no worker lane');
  const grey = await page.locator('#timeline rect.bar.cached').evaluateAll(els =>
    els.filter(e => { const b = e.getBoundingClientRect(); return b.width > 0 && b.height > 0 && getComputedStyle(e).fill === 'rgb(158, 158, 158)'; }).length);
  if (grey !== cached) throw new Error(`the timeline drew ${grey} grey bars of cached steps, expected ${cached}`);
  if (cached > 0) {
    const named = await page.locator('#cached tr td:first-child').count();
    if (named !== Math.min(cached, 50)) throw new Error(`the table of cached steps names ${named}, expected ${Math.min(cached, 50)}`);
  }
  const charts = ran === 0 ? [] : resources ? ['#chart-duration', '#chart-cpu', '#chart-memory'] : ['#chart-duration'];
  for (const chart of charts) {
    if (await drawn(`${chart} rect.mean`) < 1) throw new Error(`${chart} drew no bar`);
  }
  if (!resources && await page.locator('#chart-cpu').count() > 0) throw new Error('a CPU chart without CPU columns');
  const slowest = await page.locator('#slowest tr').count() - 1;
  if (slowest !== Math.min(ran, 20)) throw new Error(`the slowest table lists ${slowest} attempts, expected ${Math.min(ran, 20)} (only what ran)`);
  const log = await page.locator(ran > 0 ? '#slowest a' : '#cached a').first().getAttribute('href');
  if (!log || !/^tasks\/[^/]+\/[^/]+\.log$/.test(log)) throw new Error(`the first log link is ${log}`);
  if (requests.length > 0) throw new Error(`the report asked the network for ${requests[0]}`);
  await page.screenshot({ path: png, fullPage: true });
  console.log(`ok: ${timeline} bars (${grey} cached), charts ${charts.join(' ') || 'none'}; screenshot ${png}`);
} catch (e) {
  console.error(`report check failed: ${e.message.split('\n')[0]}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  rmSync(profile, { recursive: true, force: true });
}
