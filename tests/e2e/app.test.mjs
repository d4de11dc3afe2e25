// End-to-end tests of the page in a real Chromium (Debian's, driven by playwright-core).
// Run by scripts/test.sh after it has built pkg/ and a bundle of the grocery catalog with the
// committed tiny random CLIP (CLIPMATCH_E2E_BUNDLE). With random weights only image-to-image
// identity is a safe expectation, so that is what the ranking tests assert.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, copyFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const root = path.resolve(import.meta.dirname, '../..');
const bundleDir = process.env.CLIPMATCH_E2E_BUNDLE;
const grocery = process.env.CLIPMATCH_E2E_GROCERY;
const tool = path.join(root, 'target/release/clipmatch');
const out = path.join(root, 'test-output/e2e');
const browserArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let server, base, isolatedServer, isolatedBase, browser;

/** A static server of the repository; `isolate` adds COOP/COEP (cross-origin isolation). */
async function startServer(isolate) {
  const args = [path.join(root, 'scripts/static_server.py'), '--port', '0', '--dir', root, ...(isolate ? ['--isolate'] : [])];
  const proc = spawn('python3', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => { const m = /http:\/\/[\d.]+:(\d+)\//.exec(String(d)); if (m) resolve(`http://127.0.0.1:${m[1]}/`); });
    proc.on('exit', (code) => reject(new Error(`static server exited ${code}`)));
  });
  return { proc, url };
}

before(async () => {
  assert.ok(bundleDir, 'CLIPMATCH_E2E_BUNDLE names the bundle to test (scripts/test.sh sets it)');
  mkdirSync(out, { recursive: true });
  ({ proc: server, url: base } = await startServer(false));
  ({ proc: isolatedServer, url: isolatedBase } = await startServer(true));
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: browserArgs });
});

after(async () => {
  server?.kill();
  isolatedServer?.kill();
  // Chromium has been seen not to answer close() after pages with worker threads and a service
  // worker; never let that hold the suite (node exits with --test-force-exit, taking Chromium along).
  await Promise.race([browser?.close(), new Promise((resolve) => setTimeout(resolve, 15_000))]);
});

const bundleParam = () => encodeURIComponent(path.relative(root, bundleDir) + '/');
const photo = (rel) => path.join(grocery, 'photos', rel);
const iconicOf = (name) => {
  for (const group of readdirSync(path.join(grocery, 'iconic'))) {
    const dir = path.join(grocery, 'iconic', group, name);
    try { return path.join(dir, readdirSync(dir).find((f) => f.endsWith('_Iconic.jpg'))); } catch { /* next group */ }
  }
  throw new Error(`no iconic image for ${name}`);
};

async function openApp(viewport = { width: 1280, height: 900 }, contextOptions = {}, from = base, query = '') {
  const context = await browser.newContext({ viewport, ...contextOptions });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${from}index.html?bundle=${bundleParam()}${query}`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
  return { page, context, errors };
}

/** Chooses a file and waits for the worker's answer to it (a ranking or an error). */
async function upload(page, file) {
  const before = await page.evaluate(() => window.clipmatch.answers || 0);
  await page.setInputFiles('#file-input', file);
  await page.waitForFunction((n) => (window.clipmatch.answers || 0) > n || !document.querySelector('#input-error').hidden, before, { timeout: 60_000 });
  await page.waitForSelector('body[data-state="ready"]');
}

const results = (page) => page.$$eval('#result-list li', (lis) => lis.map((li) => ({ id: li.dataset.id, score: Number(li.dataset.score), name: li.querySelector('.name').textContent })));

test('a product photo ranked on images only finds that product first', async () => {
  const { page, context, errors } = await openApp();
  await page.click('#advanced summary');
  await page.fill('#weight-text', '0');
  await page.fill('#weight-image', '1');
  await page.dispatchEvent('#weight-text', 'input');
  await upload(page, iconicOf('Oatly-Natural-Oatghurt'));
  const r = await results(page);
  assert.equal(r[0].id, 'oatly-natural-oatghurt');
  assert.ok(Math.abs(r[0].score - 1) < 1e-3, `self-similarity ${r[0].score}`);
  // Thumbnails arrive after the ranking (fetched, checked and cached by the page): wait for the first.
  await page.waitForFunction(() => { const img = document.querySelector('#result-list li .thumb'); return img && img.complete && img.naturalWidth > 0; },
    null, { timeout: 10_000 }).catch(() => {});
  assert.equal(await page.$eval('#result-list li .thumb', (img) => img.complete && img.naturalWidth > 0), true, 'thumbnail shows');
  await page.screenshot({ path: path.join(out, 'desktop-image-only.png'), fullPage: true });
  assert.deepEqual(errors, []);
  await context.close();
});

async function assertRanksLikeTheNativeTool(page) {
  const shot = photo('Juice/God-Morgon-Orange-Red-Grapefruit-Juice/God-Morgon-Orange-Red-Grapefruit-Juice_001.jpg');
  const native = JSON.parse(execFileSync(tool, ['query', shot, '--catalog', bundleDir, '--model', path.join(bundleDir, 'model'), '--json'], { encoding: 'utf8' }));
  await upload(page, shot);
  const r = await results(page);
  const n = native.ranking.matches;
  assert.deepEqual(r.map((x) => x.id), n.map((x) => x.id), 'same order');
  for (let i = 0; i < n.length; i++) assert.ok(Math.abs(r[i].score - n[i].score) <= 1e-4, `${n[i].id}: page ${r[i].score}, native ${n[i].score}`);
}

test("the page's ranking equals the native tool's on the same catalog (one thread)", async () => {
  const { page, context } = await openApp(undefined, {}, base, '&threads=1');
  const ready = await page.evaluate(() => ({ isolated: self.crossOriginIsolated, threads: window.clipmatch.ready.threads }));
  assert.deepEqual(ready, { isolated: false, threads: 1 }, 'a page that is not isolated runs on one thread');
  await assertRanksLikeTheNativeTool(page);
  await page.screenshot({ path: path.join(out, 'desktop-grocery-photo.png'), fullPage: true });
  await context.close();
});

for (const [how, server] of [['by its host\'s headers', () => isolatedBase], ['by the service worker (no headers)', () => base]]) test(`a page isolated ${how} runs the multi-threaded build, with the same ranking`, async () => {
  const { page, context, errors } = await openApp(undefined, {}, server());
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const ready = await page.evaluate(() => ({ isolated: self.crossOriginIsolated, threads: window.clipmatch.ready.threads }));
  assert.equal(ready.isolated, true);
  assert.equal(ready.threads, Math.min(cores, 4), `threads in use on ${cores} cores`);
  await assertRanksLikeTheNativeTool(page);
  assert.deepEqual(errors, []);
  await context.close();
});

test('a corrupt file gets an inline error, then a valid photo still works', async () => {
  const { page, context } = await openApp();
  const bad = path.join(out, 'corrupt.jpg');
  writeFileSync(bad, Buffer.from('this is not a photo, whatever its name says'));
  await upload(page, bad);
  const message = await page.$eval('#input-error', (e) => (e.hidden ? '' : e.textContent));
  assert.match(message, /corrupt\.jpg: not an image/);
  assert.equal(await page.$$eval('#result-list li', (l) => l.length), 0);
  const truncated = path.join(out, 'truncated.jpg');
  const good = photo('Oatghurt/Oatly-Natural-Oatghurt/Oatly-Natural-Oatghurt_001.jpg');
  writeFileSync(truncated, (await import('node:fs')).readFileSync(good).subarray(0, 5000));
  await upload(page, truncated);
  assert.match(await page.$eval('#input-error', (e) => e.textContent), /truncated\.jpg: the JPEG data is corrupt or truncated/);
  await page.screenshot({ path: path.join(out, 'desktop-corrupt-file.png'), fullPage: true });
  await upload(page, good);
  assert.equal(await page.$eval('#input-error', (e) => e.hidden), true, 'the error is gone');
  assert.equal((await results(page)).length, 5);
  await context.close();
});

test('the live camera takes a photo that is ranked (fake capture device)', async () => {
  const frame = path.join(out, 'camera.mjpeg');
  copyFileSync(iconicOf('Arla-Standard-Milk'), frame);
  const camBrowser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [...browserArgs, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${frame}`],
  });
  const context = await camBrowser.newContext({ viewport: { width: 375, height: 812 }, permissions: ['camera'] });
  const page = await context.newPage();
  await page.goto(`${base}index.html?bundle=${bundleParam()}`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
  await page.click('#advanced summary');
  await page.fill('#weight-text', '0');
  await page.dispatchEvent('#weight-text', 'input');
  await page.click('#camera-open');
  await page.waitForFunction(() => document.querySelector('#camera-video').videoWidth > 0, null, { timeout: 30_000 });
  await page.screenshot({ path: path.join(out, 'phone-camera.png'), fullPage: true });
  await page.click('#camera-shutter');
  await page.waitForSelector('#result-list li', { timeout: 60_000 });
  const r = await results(page);
  assert.equal(r[0].id, 'arla-standard-milk', `top result ${JSON.stringify(r[0])}`);
  await camBrowser.close();
});

test('phone viewport: usable at 375x812, keyboard reaches the photo button', async () => {
  const { page, context } = await openApp({ width: 375, height: 812 });
  assert.equal(await page.isVisible('#query-image'), false, 'no empty photo box before a photo is chosen');
  await page.screenshot({ path: path.join(out, 'phone-ready.png'), fullPage: true });
  await upload(page, photo('Yoghurt/Arla-Mild-Vanilla-Yoghurt/Arla-Mild-Vanilla-Yoghurt_001.jpg'));
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(width <= 375, `no horizontal scrolling (${width}px wide)`);
  await page.screenshot({ path: path.join(out, 'phone-results.png'), fullPage: true });
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  const focused = await page.evaluate(() => document.activeElement?.id || document.activeElement?.tagName);
  assert.ok(['drop-zone', 'file-input'].includes(focused), `focus went to ${focused}`);
  await context.close();
});

test('full storage: the page says so and works from memory', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: base.replace(/\/$/, ''), quotaSize: 1024 });
  await page.goto(`${base}index.html?bundle=${bundleParam()}`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
  const note = await page.$eval('#storage-text', (e) => (e.hidden ? '' : e.textContent));
  assert.match(note, /Storage is full or refused.*works from memory/);
  await upload(page, iconicOf('Oatly-Natural-Oatghurt'));
  assert.equal((await results(page)).length, 5);
  await context.close();
});

test('a second visit loads the model and catalog from the Cache API, not the network', async () => {
  const { page, context } = await openApp();
  assert.equal(await page.evaluate(() => window.clipmatch.ready.fromCache), false, 'first visit downloads');
  const downloads = [];
  context.on('request', (r) => { if (/model\.safetensors|vectors\.bin|catalog\.json/.test(r.url())) downloads.push(r.url()); });
  await page.reload();
  await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
  assert.equal(await page.evaluate(() => window.clipmatch.ready.fromCache), true);
  assert.deepEqual(downloads, []);
  assert.match(await page.textContent('#status-text'), /loaded from this device/);
  await context.close();
});
