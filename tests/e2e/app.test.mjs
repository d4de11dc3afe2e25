// End-to-end tests of the page in a real Chromium (Debian's, driven by playwright-core).
// Run by scripts/test.sh after it has built pkg/ and a bundle of the grocery catalog with the
// committed tiny random CLIP (CLIPMATCH_E2E_BUNDLE). With random weights only image-to-image
// identity is a safe expectation, so that is what the ranking tests assert. Every page runs under
// the app's Content-Security-Policy (index.html's <meta>, and the same as a header for workers).
// The hostile-input, security and recovery tests are in hardening.mjs and isolation.mjs; photos
// chosen in quick succession in race.mjs; what ships without test hooks in shipped.mjs; threads
// (more than cores, idle, failing to start, out of memory) in threads.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { env, startSuite, bundleDir, tool, out, browserArgs, bundleParam, photo, iconicOf, openApp, openWithModelHeld, upload, results, rankOnImagesOnly, watchPage } from './harness.mjs';
import { hardeningTests } from './hardening.mjs';
import { isolationTests } from './isolation.mjs';
import { familyTests } from './families.mjs';
import { compactTests } from './compact.mjs';
import { shopTests } from './shop.mjs';
import { offlineTests } from './offline.mjs';
import { cropTests, nextAnswer, mouseDrag, regionShown } from './crop.mjs';
import { raceTests } from './race.mjs';
import { shippedTests } from './shipped.mjs';
import { photoMemoryTests } from './photo_memory.mjs';
import { threadTests } from './threads.mjs';

startSuite();

test('a product photo ranked on images only finds that product first', async () => {
  const { page, context, problems } = await openApp();
  await rankOnImagesOnly(page);
  await upload(page, iconicOf('Oatly-Natural-Oatghurt'));
  const r = await results(page);
  assert.equal(r[0].id, 'oatly-natural-oatghurt');
  assert.ok(Math.abs(r[0].score - 1) < 1e-3, `self-similarity ${r[0].score}`);
  // Thumbnails came with the catalog (blob: URLs of checked bytes): wait for the first to decode.
  await page.waitForFunction(() => { const img = window.clipmatch.root.querySelector('#result-list li .thumb'); return img && img.complete && img.naturalWidth > 0; },
    null, { timeout: 10_000 }).catch(() => {});
  assert.equal(await page.$eval('#result-list li .thumb', (img) => img.complete && img.naturalWidth > 0), true, 'thumbnail shows');
  await page.screenshot({ path: path.join(out, 'desktop-image-only.png'), fullPage: true });
  assert.deepEqual(await problems(), []);
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
  const { page, context } = await openApp(undefined, {}, env.base, '&threads=1');
  const ready = await page.evaluate(() => ({ isolated: self.crossOriginIsolated, threads: window.clipmatch.ready.threads }));
  assert.deepEqual(ready, { isolated: false, threads: 1 }, 'a page that is not isolated runs on one thread');
  // The sliders start at the catalog's weights (scripts/test.sh builds it with 1.2 and 0.7), not at values of the page's own.
  const ranking = JSON.parse(readFileSync(path.join(bundleDir, 'catalog.json'), 'utf8')).ranking;
  const sliders = await page.evaluate(() => ['#weight-text', '#weight-image', '#weight-text-value'].map((s) => window.clipmatch.root.querySelector(s).value));
  assert.deepEqual(sliders.map(Number), [ranking.text_weight, ranking.image_weight, ranking.text_weight]);
  await assertRanksLikeTheNativeTool(page);
  // Each result's breakdown names the weights as the catalog wrote them, not as f32 digits.
  const breakdown = await page.$eval('#result-list li .breakdown', (e) => e.textContent);
  assert.match(breakdown, /\(1\.2 × .*\(0\.7 × /, breakdown);
  // The Advanced panel says, in words, that these weights were not measured on photos, and what the threshold is.
  const source = await page.textContent('#weights-source');
  assert.match(source, /^These weights were set when the catalog was built \(name 1\.2, image 0\.7\), not measured/, source);
  assert.equal(await page.textContent('#threshold-meaning'),
    `A result is called a confident match when its score is at least ${ranking.min_score.toFixed(3)}. That threshold is an estimate made from the catalog's own product photos, not yet checked against photos taken in the shop.`);
  await page.screenshot({ path: path.join(out, 'desktop-grocery-photo.png'), fullPage: true });
  await context.close();
});

for (const [how, server] of [['by its host\'s headers', () => env.isolatedBase], ['by the service worker (no headers)', () => env.base]]) test(`a page isolated ${how} runs the multi-threaded build, with the same ranking`, async () => {
  const { page, context, problems } = await openApp(undefined, {}, server());
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  const ready = await page.evaluate(() => ({ isolated: self.crossOriginIsolated, threads: window.clipmatch.ready.threads, pool: window.clipmatch.ready.threading.pool }));
  assert.equal(ready.isolated, true);
  // The pool's size; how many of its threads are used is measured at load (threads.mjs).
  assert.equal(ready.pool, Math.min(cores, 4), `the pool on ${cores} cores`);
  assert.ok(ready.threads >= 1 && ready.threads <= ready.pool, JSON.stringify(ready));
  await assertRanksLikeTheNativeTool(page);
  assert.deepEqual(await problems(), [], 'no errors, no CSP violations (page, worker, thread pool)');
  await context.close();
});

test('the live camera takes a photo that is ranked, and a box on it ranks that region (fake capture device)', async () => {
  const frame = path.join(out, 'camera.mjpeg');
  copyFileSync(iconicOf('Arla-Standard-Milk'), frame);
  const camBrowser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [...browserArgs, '--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', `--use-file-for-fake-video-capture=${frame}`],
  });
  const context = await camBrowser.newContext({ viewport: { width: 375, height: 812 }, permissions: ['camera'] });
  const page = await context.newPage();
  const watch = await watchPage(context, page);
  // A shot taken while the model downloads is kept, and searched once the model has loaded.
  const release = await openWithModelHeld(context, page);
  await page.click('#camera-open');
  await page.waitForFunction(() => window.clipmatch.root.querySelector('#camera-video').videoWidth > 0, null, { timeout: 30_000 });
  await page.click('#camera-shutter');
  assert.equal(await page.evaluate(() => document.body.dataset.state), 'loading');
  assert.match(await page.textContent('#verdict'), /will be searched as soon as the model has loaded/);
  release();
  await page.waitForFunction(() => window.clipmatch.answers >= 1, null, { timeout: 120_000 });
  assert.equal(await page.textContent('#query-caption'), 'Camera photo');
  assert.ok((await results(page)).length > 0, 'the shot taken while loading is ranked');
  await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
  await rankOnImagesOnly(page);
  await page.click('#camera-open');
  await page.waitForFunction(() => window.clipmatch.root.querySelector('#camera-video').videoWidth > 0, null, { timeout: 30_000 });
  await page.screenshot({ path: path.join(out, 'phone-camera.png'), fullPage: true });
  await page.click('#camera-shutter');
  await page.waitForSelector('#result-list li', { timeout: 60_000 });
  const r = await results(page);
  assert.equal(r[0].id, 'arla-standard-milk', `top result ${JSON.stringify(r[0])}`);
  // The shot shows as the query image (a blob: URL, as the CSP allows), and nothing was blocked.
  await page.waitForFunction(() => window.clipmatch.root.querySelector('#query-image').naturalWidth > 0, null, { timeout: 10_000 });
  assert.match(await page.getAttribute('#query-image', 'src'), /^blob:/);
  await page.screenshot({ path: path.join(out, 'phone-camera-result.png'), fullPage: true });
  // A box on the shot ranks that region of the frame the worker already has (in the shot's pixels).
  await nextAnswer(page, () => mouseDrag(page, [0.1, 0.1], [0.6, 0.7]));
  const shown = await regionShown(page);
  const [w, h] = await page.$eval('#query-image', (img) => [img.naturalWidth, img.naturalHeight]);
  assert.ok(shown.region && shown.region[0] + shown.region[2] <= w && shown.region[1] + shown.region[3] <= h, `${shown.region} in ${w}x${h}`);
  assert.match(shown.status, /^Results for the selected region: /);
  assert.notDeepEqual((await results(page)).map((x) => x.score), r.map((x) => x.score), 'the region ranks differently');
  assert.equal(await page.$eval('#input-error', (e) => e.hidden), true);
  assert.deepEqual(await watch.all(), []);
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
  const focused = await page.evaluate(() => { const a = window.clipmatch.root.activeElement || document.activeElement; return a?.id || a?.tagName; });
  assert.ok(['drop-zone', 'file-input'].includes(focused), `focus went to ${focused}`);
  await context.close();
});

test('full storage: the page says so and works from memory', async () => {
  const context = await env.browser.newContext();
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: env.base.replace(/\/$/, ''), quotaSize: 1024 });
  await page.goto(`${env.base}index.html?bundle=${bundleParam()}`);
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
  context.on('request', (r) => { if (/model\.safetensors|vectors\.bin|catalog\.json|thumbs\//.test(r.url())) downloads.push(r.url()); });
  await page.reload();
  await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
  assert.equal(await page.evaluate(() => window.clipmatch.ready.fromCache), true);
  assert.deepEqual(downloads, []);
  assert.match(await page.textContent('#status-text'), /loaded from this device/);
  await context.close();
});

hardeningTests();
isolationTests();
familyTests();
cropTests();
compactTests();
shopTests();
offlineTests();
raceTests();
shippedTests();
photoMemoryTests();
threadTests();
