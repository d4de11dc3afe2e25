// A big catalog's compact bundle (issue 13, item 3): scripts/test.sh builds the grocery catalog
// with `build --compact --compact-min-items 1` so that its 31 products take the compact path
// (CLIPMATCH_E2E_COMPACT_BUNDLE). Before the vectors file has arrived the page answers from the
// codes (fused with the catalog's weights, whatever the sliders say) and says so; after, it ranks
// as the native tool does, with the user's weights. What it fetches never depends on the photo:
// nothing at all after a photo, no thumbnails, not the full manifest; the page catalog comes
// gzipped and is decompressed by the page. Registered by app.test.mjs, which starts the suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { env, tool, out, bundleParam, iconicOf, watchPage, upload, results, rankOnImagesOnly, assertSameRanking } from './harness.mjs';

const compactDir = process.env.CLIPMATCH_E2E_COMPACT_BUNDLE;

export function compactTests() {
  test('a compact bundle answers from the codes first, exactly once the vectors arrive, and fetches nothing that depends on the photo', { skip: !compactDir && 'CLIPMATCH_E2E_COMPACT_BUNDLE is not set' }, async () => {
    const bundle = JSON.parse(readFileSync(path.join(compactDir, 'bundle.json'), 'utf8'));
    assert.deepEqual(bundle.compact, { manifest: 'page-catalog.json.gz', codes: 'compact.bin' });
    assert.ok(!bundle.files.some((f) => f.path.startsWith('thumbs/')), 'a compact bundle carries no thumbnails');
    const context = await env.browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    const watch = await watchPage(context, page);
    const requests = [];
    context.on('request', (r) => requests.push(new URL(r.url()).pathname));
    // The vectors file is held back until the first photo has been answered.
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    await context.route('**/vectors.bin', async (route) => { await held; await route.continue(); });
    try {
      await page.goto(`${env.base}index.html?bundle=${bundleParam(compactDir)}&threads=1`);
      await page.waitForSelector('body[data-state="ready"]', { timeout: 180_000 });
      // The vectors' size in a unit that shows it (a tiny catalog's are a few hundred bytes, not "0.0 MB").
      await page.waitForFunction(() => /until the catalog's vectors/.test(window.clipmatch.root.querySelector('#storage-text').textContent), null, { timeout: 10_000 });
      const note = await page.textContent('#storage-text');
      assert.match(note, /until the catalog's vectors \((\d+ bytes|\d+\.\d kB)\) have downloaded/, note);
      // The worker asks for the vectors file right after "Ready", before any photo.
      for (let i = 0; i < 600 && !requests.some((p) => p.endsWith('/vectors.bin')); i++) await page.waitForTimeout(50);
      const shot = iconicOf('Oatly-Natural-Oatghurt');
      const beforePhoto = requests.length;
      await upload(page, shot);
      assert.match(await page.textContent('#verdict'), /\(approximate: the catalog's vectors are still downloading\)$/);
      assert.equal((await results(page)).length, 5);
      assert.equal(await page.textContent('#results .breakdown >> nth=0'), 'name and image together (compact codes)');
      // Other weights before the vectors: the codes' answer, with the catalog's weights, saying so.
      const approximate = await results(page);
      await rankOnImagesOnly(page);
      await page.waitForFunction(() => /yours apply once/.test(window.clipmatch.root.querySelector('#verdict').textContent), null, { timeout: 30_000 });
      assert.match(await page.textContent('#verdict'), /approximate, with the catalog's weights 1\.5 × name \+ 0\.5 × image: yours apply once the catalog's vectors have downloaded/);
      assert.deepEqual(await results(page), approximate);
      // No thumbnails in a compact catalog: no images shown, rather than broken ones.
      assert.equal(await page.locator('#results .thumb:visible').count(), 0);
      await page.screenshot({ path: path.join(out, 'desktop-compact-approximate.png'), fullPage: true });
      release();
      await page.waitForFunction(() => /results are exact/.test(window.clipmatch.root.querySelector('#storage-text').textContent), null, { timeout: 60_000 });
      await upload(page, shot);
      assert.doesNotMatch(await page.textContent('#verdict'), /approximate/);
      await page.setViewportSize({ width: 390, height: 844 });
      await page.screenshot({ path: path.join(out, 'phone-compact-exact.png'), fullPage: true });
      const args = ['query', shot, '--catalog', compactDir, '--model', path.join(compactDir, 'model'), '--json', '--text-weight', '0', '--image-weight', '1'];
      const native = JSON.parse(execFileSync(tool, args, { encoding: 'utf8' })).ranking.matches;
      assertSameRanking(await results(page), native, 'compact bundle with its vectors vs the native tool', 1e-4);
      assert.deepEqual(requests.slice(beforePhoto), [], 'nothing is fetched after a photo');
      const catalogFiles = requests.filter((p) => p.includes(path.basename(compactDir) + '/') && !p.includes('/model/') && !p.endsWith('bundle.json'));
      assert.deepEqual(catalogFiles.map((p) => path.basename(p)).sort(), ['compact.bin', 'page-catalog.json.gz', 'vectors.bin']);
      assert.deepEqual(await watch.all(), []);
    } finally {
      release();
      await context.close();
    }
  });

  test('a damaged compact.bin is refused in one line', { skip: !compactDir && 'CLIPMATCH_E2E_COMPACT_BUNDLE is not set' }, async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    const codes = readFileSync(path.join(compactDir, 'compact.bin'));
    codes[codes.length - 1] ^= 1;
    await context.route('**/compact.bin', (route) => route.fulfill({ body: codes, contentType: 'application/octet-stream' }));
    try {
      await page.goto(`${env.base}index.html?bundle=${bundleParam(compactDir)}&threads=1`);
      await page.waitForSelector('body[data-state="error"]', { timeout: 180_000 });
      const status = await page.textContent('#status-text');
      assert.match(status, /^The app could not load: compact\.bin is damaged: its sha256 does not match bundle\.json$/);
    } finally {
      await context.close();
    }
  });
}
