// The shop-ready page (issue 12): item fields in results (links only for http(s) and relative
// URLs, resolved against the bundle's folder; price and sku as text), the <clipmatch-search>
// element in a shop's own page on another path with its own CSS (styles scoped both ways, events,
// a click following the item's url), the download's size said first and asked for on a metered
// connection, time left beside bytes, no console noise. Registered by app.test.mjs.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { env, root, grocery, tool, out, watchPage, rankOnImagesOnly, upload, iconicOf, bundleParam } from './harness.mjs';

const shopDir = path.join(out, 'shop');
const PRODUCTS = ['Oatly-Natural-Oatghurt', 'Arla-Standard-Milk', 'Bravo-Apple-Juice', 'God-Morgon-Apple-Juice', 'Arla-Sour-Milk', 'Tropicana-Apple-Juice'];
/** Each product's url field: relative (to the bundle's folder), absolute, and ones that must not become links. */
const URLS = {
  'Oatly-Natural-Oatghurt': '../products/oatly.html',
  'Arla-Standard-Milk': 'javascript:alert(1)',
  'Bravo-Apple-Juice': 'data:text/html,<b>x</b>',
  'God-Morgon-Apple-Juice': 'https://shop.example/god-morgon',
  'Arla-Sour-Milk': '',
  'Tropicana-Apple-Juice': '/test-output/e2e/shop/products/tropicana.html',
};

/**
 * A shop's site: a catalog built from a CSV with url, price and sku, its bundle, product pages, and
 * a page embedding the element (test-output/e2e/shop/; pages/search.html is the host page).
 */
export function buildShopSite() {
  rmSync(shopDir, { recursive: true, force: true });
  mkdirSync(path.join(shopDir, 'products'), { recursive: true });
  mkdirSync(path.join(shopDir, 'pages'), { recursive: true });
  const rows = PRODUCTS.map((p, i) => [iconicOf(p), p.replaceAll('-', ' '), p.toLowerCase(), URLS[p], `${i + 1}.95 €`, i % 2 ? '' : `SKU-${i}`]);
  const cell = (v) => `"${String(v).replaceAll('"', '""')}"`;
  writeFileSync(path.join(shopDir, 'products.csv'), ['image,name,id,url,price,sku', ...rows.map((r) => r.map(cell).join(','))].join('\n') + '\n');
  const model = path.join(root, 'tests/fixtures/tiny-clip');
  const tokenizer = path.join(grocery, '..', 'clip-vit-base-patch32', 'tokenizer.json');
  const opts = { env: { ...process.env, CLIPMATCH_MODEL: model, CLIPMATCH_TOKENIZER: tokenizer }, stdio: 'pipe' };
  execFileSync(tool, ['build', path.join(shopDir, 'products.csv'), '--out', path.join(shopDir, 'catalog')], opts);
  execFileSync(tool, ['bundle', '--catalog', path.join(shopDir, 'catalog'), '--out', path.join(shopDir, 'bundle')], opts);
  for (const name of ['oatly', 'tropicana']) {
    writeFileSync(path.join(shopDir, 'products', `${name}.html`), `<!doctype html><meta charset="utf-8"><link rel="icon" href="../../../../www/icon.svg"><title>${name}</title><h1>Product page: ${name}</h1>\n`);
  }
  // The shop's page: its own CSS (aggressive rules that would break ours if they leaked in) and
  // script (no inline code: the test server sends the same CSP as the app's).
  writeFileSync(path.join(shopDir, 'pages', 'shop.css'), [
    'body { font-family: Georgia, serif; background: #fffbea; margin: 0; padding: 1rem; }',
    '.shop-header { background: #7a1f1f; color: #fff; padding: 1rem; }',
    '.name, .result, li, section, progress { color: rgb(255, 0, 0) !important; font-size: 30px !important; }',
    'button, .button { display: none !important; }',
    '.note { color: rgb(0, 128, 0); font-size: 30px; }',
  ].join('\n') + '\n');
  writeFileSync(path.join(shopDir, 'pages', 'shop.js'), [
    "import '../../../../www/clipmatch-search.js';",
    'window.hostEvents = [];',
    "const search = document.querySelector('clipmatch-search');",
    "for (const type of ['ready', 'results', 'select']) search.addEventListener(type, (e) => window.hostEvents.push({ type, detail: JSON.parse(JSON.stringify({ ...e.detail, ranking: undefined, matches: e.detail.ranking?.matches })) }));",
  ].join('\n') + '\n');
  writeFileSync(path.join(shopDir, 'pages', 'search.html'), `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Our shop</title><link rel="icon" href="../../../../www/icon.svg">
<link rel="stylesheet" href="shop.css"><script type="module" src="shop.js"></script></head>
<body><header class="shop-header"><p class="note">Our shop: search by photo</p></header>
<clipmatch-search bundle="../bundle/"></clipmatch-search>
<p class="note" id="shop-note">The shop's own text.</p></body></html>
`);
}

export const hostUrl = (base = env.base) => `${base}test-output/e2e/shop/pages/search.html`;

async function openHost(viewport, contextOptions = {}) {
  const context = await env.browser.newContext({ viewport, ...contextOptions });
  const page = await context.newPage();
  const watch = await watchPage(context, page);
  const missing = [];
  page.on('response', (r) => { if (r.status() >= 400) missing.push(`${r.status()} ${r.url()}`); });
  await page.goto(hostUrl());
  await page.waitForSelector('clipmatch-search[data-state="ready"]', { timeout: 120_000 });
  return { page, context, watch, missing };
}

const shownResults = (page) => page.$$eval('#result-list li', (lis) => lis.map((li) => ({
  id: li.dataset.id,
  link: li.querySelector('.name a')?.getAttribute('href') ?? null,
  fields: li.querySelector('.fields').hidden ? '' : li.querySelector('.fields').textContent,
})));

/**
 * What the host page at `base` shows once ready, in any engine (`page`: playwright's, or
 * webdriver.mjs's in engines.test.mjs): one ready event; a photo's results with the items' fields and
 * links; the host's styles and ours kept apart; no horizontal scrolling at `viewport`; the
 * `results` event; a screenshot named `shot`.
 */
export async function assertHostPage(page, base, viewport, shot) {
  assert.equal(await page.evaluate(() => window.hostEvents.filter((e) => e.type === 'ready').length), 1, 'one ready event');
  await rankOnImagesOnly(page);
  await upload(page, iconicOf('God-Morgon-Apple-Juice'));
  const shown = await shownResults(page);
  const byId = Object.fromEntries(shown.map((r) => [r.id, r]));
  assert.equal(shown[0].id, 'god-morgon-apple-juice');
  const bundleFolder = `${base}test-output/e2e/shop/bundle/`;
  assert.equal(byId['god-morgon-apple-juice'].link, 'https://shop.example/god-morgon');
  for (const r of shown) {
    const i = PRODUCTS.findIndex((p) => p.toLowerCase() === r.id);
    const url = URLS[PRODUCTS[i]];
    const expected = { '../products/oatly.html': new URL(url, bundleFolder).href, '/test-output/e2e/shop/products/tropicana.html': new URL(url, base).href, 'https://shop.example/god-morgon': url }[url] ?? null;
    assert.equal(r.link, expected, `${r.id}: link for ${JSON.stringify(url)}`);
    assert.ok(r.fields.includes(`Price ${i + 1}.95 €`), `${r.id}: ${r.fields}`);
    assert.equal(r.fields.includes(`SKU SKU-${i}`), i % 2 === 0, `${r.id}: ${r.fields}`);
    // A url that is no link is shown as text (and only then).
    assert.equal(r.fields.includes(url) && url !== '', url !== '' && expected === null, `${r.id}: ${r.fields}`);
  }
  // The host's CSS stays out (its red, 30px text, hidden buttons), ours stays in (its .note is still green).
  const style = await page.$eval('#result-list li .name', (e) => ({ color: getComputedStyle(e).color, size: getComputedStyle(e).fontSize }));
  assert.notEqual(style.color, 'rgb(255, 0, 0)');
  assert.notEqual(style.size, '30px');
  assert.equal(await page.isVisible('#weights-reset'), true, 'our buttons are not hidden by the host\'s button rule');
  assert.equal(await page.$eval('#shop-note', (e) => getComputedStyle(e).color), 'rgb(0, 128, 0)', 'the host\'s .note keeps its colour');
  assert.equal(await page.$eval('#shop-note', (e) => getComputedStyle(e).fontSize), '30px', 'the host\'s own rules still apply to its page');
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= viewport.width, `no horizontal scrolling (${width}px)`);
  // results: the matches with their fields.
  const results = await page.evaluate(() => window.hostEvents.filter((e) => e.type === 'results').at(-1).detail.matches);
  assert.equal(results[0].fields.url, 'https://shop.example/god-morgon');
  await page.screenshot({ path: path.join(out, shot), fullPage: true });
}

export function shopTests() {
  before(buildShopSite);
  test('a shop page on another path embeds <clipmatch-search>: results with fields, styles scoped both ways, events, links followed', async () => {
    for (const [label, viewport] of [['desktop', { width: 1280, height: 800 }], ['phone', { width: 390, height: 844 }]]) {
      const { page, context, watch, missing } = await openHost(viewport);
      await assertHostPage(page, env.base, viewport, `shop-host-${label}.png`);
      // Clicking a result follows its url (resolved against the bundle's folder) after a `select` event.
      if (label === 'desktop') {
        await upload(page, iconicOf('Oatly-Natural-Oatghurt'));
        await Promise.all([page.waitForURL('**/shop/products/oatly.html'), page.click('#result-list li[data-id="oatly-natural-oatghurt"] .name a')]);
        assert.match(await page.textContent('h1'), /Product page: oatly/);
      }
      assert.deepEqual(await watch.all(), []);
      assert.deepEqual(missing, [], 'nothing missing (no 404s)');
      await context.close();
    }
  });

  test('embedded, the element never reloads the shop\'s page nor registers a service worker; it uses threads where the page is isolated', async () => {
    for (const [base, isolated] of [[env.base, false], [env.isolatedBase, true]]) {
      const context = await env.browser.newContext();
      const page = await context.newPage();
      const watch = await watchPage(context, page);
      let loads = 0;
      page.on('load', () => loads++);
      await page.goto(hostUrl(base));
      await page.waitForSelector('clipmatch-search[data-state="ready"]', { timeout: 120_000 });
      const seen = await page.evaluate(async () => ({
        isolated: self.crossOriginIsolated,
        pool: window.clipmatch.ready.threading.pool,
        registrations: (await navigator.serviceWorker.getRegistrations()).length,
      }));
      assert.equal(seen.isolated, isolated);
      assert.equal(seen.pool > 1, isolated, `the threaded package where isolated: ${JSON.stringify(seen)}`);
      assert.equal(seen.registrations, 0);
      await rankOnImagesOnly(page);
      await upload(page, iconicOf('Bravo-Apple-Juice'));
      assert.equal((await shownResults(page))[0].id, 'bravo-apple-juice');
      assert.equal(loads, 1, 'one load: no reload');
      assert.deepEqual(await watch.all(), []);
      await context.close();
    }
  });

  test('the host can cancel a select: the page stays, the event carries the item and its fields', async () => {
    const { page, context } = await openHost({ width: 1280, height: 800 });
    await page.evaluate(() => document.querySelector('clipmatch-search').addEventListener('select', (e) => e.preventDefault()));
    await rankOnImagesOnly(page);
    await upload(page, iconicOf('Oatly-Natural-Oatghurt'));
    await page.click('#result-list li[data-id="oatly-natural-oatghurt"] .name a');
    await page.waitForTimeout(300);
    assert.match(page.url(), /pages\/search\.html$/);
    const select = await page.evaluate(() => window.hostEvents.filter((e) => e.type === 'select').at(-1).detail);
    assert.equal(select.item.id, 'oatly-natural-oatghurt');
    assert.equal(select.item.fields.price, '1.95 €');
    assert.match(select.url, /\/shop\/products\/oatly\.html$/);
    // A click elsewhere on a result selects it too, without following anything.
    const selects = await page.evaluate(() => window.hostEvents.filter((e) => e.type === 'select').length);
    await page.click('#result-list li[data-id="oatly-natural-oatghurt"] .score');
    const plain = await page.evaluate(() => window.hostEvents.filter((e) => e.type === 'select'));
    assert.equal(plain.length, selects + 1);
    assert.deepEqual([plain.at(-1).detail.item.id, plain.at(-1).detail.item.fields.sku], ['oatly-natural-oatghurt', 'SKU-0']);
    await page.waitForTimeout(300);
    assert.match(page.url(), /pages\/search\.html$/);
    await context.close();
  });

  test('first visit on a phone: the download size is said first; with Save-Data the page asks before downloading', async () => {
    const viewport = { width: 390, height: 844 };
    const context = await env.browser.newContext({ viewport, isMobile: true, hasTouch: true });
    await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'connection', { get: () => ({ saveData: true }), configurable: true }));
    const page = await context.newPage();
    const watch = await watchPage(context, page);
    const downloads = [];
    page.on('request', (r) => { if (/\/bundle\/(model\/|catalog\.json|vectors\.bin|thumbs\/)/.test(r.url())) downloads.push(r.url()); });
    await page.goto(hostUrl());
    await page.waitForSelector('#plan-go', { state: 'visible', timeout: 60_000 });
    const button = await page.textContent('#plan-go');
    const bundleBytes = JSON.parse(readFileSync(path.join(shopDir, 'bundle', 'bundle.json'), 'utf8'))
      .files.filter((f) => f.path !== 'bundle.json').reduce((s, f) => s + f.bytes, 0);
    // The bundle's files and the one-thread wasm package (the shop's page is not isolated), as app-files.json lists it.
    const engine = JSON.parse(readFileSync(path.join(root, 'app-files.json'), 'utf8')).files
      .filter((f) => f.path === 'pkg/clipmatch.js' || f.path === 'pkg/clipmatch_bg.wasm').reduce((s, f) => s + f.bytes, 0);
    const m = /^Download (\d+(?:\.\d)?) MB$/.exec(button);
    assert.ok(m && Math.abs(Number(m[1]) * 1e6 - (bundleBytes + engine)) <= 0.05e6, `${button}: bundle ${bundleBytes} + engine ${engine} bytes`);
    assert.match(await page.textContent('#plan-text'), /asks to save data.*one-time download of/);
    await page.waitForTimeout(500);
    assert.deepEqual(downloads, [], 'nothing large is downloaded before the go-ahead');
    await page.screenshot({ path: path.join(out, 'shop-phone-save-data.png'), fullPage: true });
    await page.click('#plan-go');
    await page.waitForSelector('clipmatch-search[data-state="ready"]', { timeout: 120_000 });
    assert.ok(downloads.length > 0, 'downloaded after the go-ahead');
    // A second visit needs nothing: no question.
    await page.reload();
    await page.waitForSelector('clipmatch-search[data-state="ready"]', { timeout: 120_000 });
    assert.equal(await page.isVisible('#plan-go'), false);
    assert.deepEqual(await watch.all(), []);
    await context.close();
  });

  test('a slow download shows its size first and time left beside bytes; a tiny catalog is not "0.0 MB"', async () => {
    const context = await env.browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    // A slow network: each file of the bundle arrives 600 ms late (the catalog's 30-odd files, 6 at a time, take seconds).
    await context.route(/\/target\/e2e\/bundle\/(?!bundle\.json)/, async (route) => {
      const response = await route.fetch();
      await new Promise((r) => setTimeout(r, 600));
      await route.fulfill({ response });
    });
    const texts = new Set();
    await page.goto(`${env.base}index.html?bundle=${bundleParam()}&threads=1`);
    await page.waitForSelector('#plan-text', { state: 'visible', timeout: 60_000 });
    assert.match(await page.textContent('#plan-text'), /^Downloading \d+(\.\d)? (kB|MB) \(the model, the catalog and the search engine/);
    const until = Date.now() + 120_000;
    while (Date.now() < until && !(await page.$('clipmatch-search[data-state="ready"]'))) {
      for (const id of ['#progress-model-text', '#progress-catalog-text']) texts.add(await page.textContent(id));
      if ([...texts].some((t) => /left/.test(t)) && !texts.has('shot')) {
        texts.add('shot');
        await page.screenshot({ path: path.join(out, 'shop-phone-time-left.png'), fullPage: true });
      }
      await page.waitForTimeout(200);
    }
    const shown = [...texts].filter((t) => t && t !== 'shot');
    assert.ok(shown.some((t) => /^\d+(\.\d)? (bytes|kB|MB) of \d+(\.\d)? (kB|MB), (about \d+ (s|min)|less than a second) left$/.test(t)), shown.join(' | '));
    assert.ok(!shown.some((t) => /0\.0 MB/.test(t)), shown.join(' | '));
    await context.close();
  });
}
