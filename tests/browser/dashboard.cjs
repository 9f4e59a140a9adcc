// The dashboard in a real browser (Debian's Chromium driven by playwright-core): sign in with a
// reader key, see the runs timeline, the charts and a date's reconciliation table, drill down
// to a feed's rejected rows; no console error on any page; a full-page screenshot of each.
// Usage: node dashboard.cjs <base URL> <reader key> <screenshot folder>
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');
const path = require('path');

const [base, key, shots] = process.argv.slice(2);
const fail = (msg) => { console.error(`dashboard test: ${msg}`); process.exit(1); };

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));
  page.on('response', (r) => { if (r.status() >= 400 && !r.url().endsWith('/favicon.ico')) errors.push(`HTTP ${r.status()} ${r.url()}`); });

  // Not signed in: the overview sends to the login form; a wrong key is refused.
  await page.goto(`${base}/`);
  if (!page.url().endsWith('/login')) fail(`expected the login form, got ${page.url()}`);
  await page.fill('#key', 'not-a-valid-key-at-all');
  await page.click('button[type=submit]');
  await page.waitForSelector('p.error', { timeout: 10000 }).catch(() => fail('a wrong key was not refused'));
  if (!(await page.textContent('p.error')).includes('may not read')) fail('a wrong key was not refused');
  errors.length = 0; // the 401 of the refused sign-in is expected
  await page.fill('#key', key);
  await Promise.all([page.waitForURL(`${base}/`), page.click('button[type=submit]')]);

  const started = Date.now();
  await page.goto(`${base}/?days=30`);
  const loadMs = Date.now() - started;
  const runs = await page.locator('table.timeline tbody tr').count();
  if (runs < 1) fail('no run in the timeline');
  const completed = await page.locator('table.timeline .badge.completed').count();
  if (completed < 1) fail('no completed stage in the timeline');
  const charts = await page.locator('#charts svg').count();
  if (charts !== 4) fail(`expected 4 charts, found ${charts}`);
  const drawn = await page.locator('#charts svg').first().locator('polyline, path').count();
  if (drawn < 1) fail('the revenue chart has no line');
  if ((await page.locator('#charts').textContent()).includes('no data yet')) fail('a chart has no data on the demo lake');
  await page.screenshot({ path: path.join(shots, 'dashboard-overview.png'), fullPage: true });

  await page.locator('table.timeline tbody tr a').first().click();
  await page.waitForSelector('table.reconciliation');
  const balanced = await page.locator('table.reconciliation .ok').count();
  if (balanced < 1) fail('no balanced feed in the reconciliation table');
  if ((await page.locator('table.reconciliation .bad').count()) > 0) fail('a feed does not balance');
  await page.screenshot({ path: path.join(shots, 'dashboard-date.png'), fullPage: true });

  const drill = page.locator('table.reconciliation a[href*="/rejects"]').first();
  if ((await drill.count()) < 1) fail('no feed with rejected rows to drill into');
  await drill.click();
  await page.waitForSelector('table.rejects');
  const rejected = await page.locator('table.rejects tbody tr').count();
  if (rejected < 1) fail('the rejects page lists no row');
  await page.screenshot({ path: path.join(shots, 'dashboard-rejects.png'), fullPage: true });

  await browser.close();
  if (errors.length) fail(`console or network errors:\n  ${errors.join('\n  ')}`);
  console.log(`dashboard test: ok (${runs} dates in the timeline, ${charts} charts, ${balanced} balanced feeds, ${rejected} rejected rows on the first page; overview loaded in ${loadMs} ms; screenshots in ${shots})`);
})().catch((e) => fail(e.stack || String(e)));
