// The page with other model families and engines (issue 10, item 5): a MobileCLIP bundle
// (scripts/test.sh builds it with the narrow fixture model over the grocery products,
// CLIPMATCH_E2E_MOBILECLIP_BUNDLE) answers photos as the native tool does, from the candle package
// only; `?engine=candle` on the OpenAI CLIP bundle ranks like the default engine; engines that
// cannot run are refused in one line. Registered by app.test.mjs, which starts the suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { env, bundleDir, tool, out, bundleParam, photo, iconicOf, watchPage, upload, results, inputError, rankOnImagesOnly, assertSameRanking as assertRankingNear } from './harness.mjs';

const mobileclipDir = process.env.CLIPMATCH_E2E_MOBILECLIP_BUNDLE;

/** Opens the page on bundle `dir` with `query`; waits until it is ready or has refused to load. */
async function openBundle(dir, query = '', viewport = { width: 1280, height: 900 }) {
  const context = await env.browser.newContext({ viewport });
  const page = await context.newPage();
  const watch = await watchPage(context, page);
  const wasm = [];
  context.on('request', (r) => { if (/\/pkg\/.*\.wasm$/.test(r.url())) wasm.push(new URL(r.url()).pathname); });
  await page.goto(`${env.base}index.html?bundle=${bundleParam(dir)}${query}`);
  await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { timeout: 180_000 });
  return { page, context, wasm, problems: watch.all };
}

const readyModel = (page) => page.evaluate(() => window.clipmatch.ready?.model);

/** The native tool's ranking of `shot` on the bundle in `dir` (its catalog, its exported tower). */
function nativeRanking(dir, shot, engine) {
  const args = ['query', shot, '--catalog', dir, '--model', path.join(dir, 'model'), '--json', ...(engine ? ['--engine', engine] : [])];
  return JSON.parse(execFileSync(tool, args, { encoding: 'utf8' })).ranking.matches;
}

/** Candle's families (f16 towers, another engine) are held to 1e-3. */
const assertSameRanking = (page, native, what) => assertRankingNear(page, native, what, 1e-3);

export function familyTests() {
  test('a MobileCLIP bundle (FastViT, fused) loads the package without candle, answers a photo as the native tool does, and the next photo after a bad one', { skip: !mobileclipDir && 'CLIPMATCH_E2E_MOBILECLIP_BUNDLE is not set' }, async () => {
    const { page, context, wasm, problems } = await openBundle(mobileclipDir, '&threads=1');
    assert.equal(await page.getAttribute('body', 'data-state'), 'ready', await page.textContent('#status-text'));
    assert.deepEqual(await readyModel(page), { family: 'mobileclip', engine: 'ours', dtype: 'int8' });
    assert.match(await page.textContent('#model-text'), /^Model: .* \(MobileCLIP, int8 weights\), run by the ours engine\.$/);
    assert.deepEqual(wasm, ['/pkg/clipmatch_bg.wasm'], 'only the package without candle is downloaded');
    // scripts/test.sh tuned this catalog on the labelled photos: the Advanced panel says so with its figures.
    const tuned = JSON.parse(readFileSync(path.join(mobileclipDir, 'catalog.json'), 'utf8')).ranking.tuned;
    assert.ok(tuned, 'the MobileCLIP catalog was tuned');
    const pct = (x) => (x == null ? 'not measured' : `${Math.round(x * 100)} %`);
    assert.equal(await page.textContent('#weights-source'),
      `These weights were tuned on ${tuned.when.slice(0, 10)} on ${tuned.photos} labelled photos of ${tuned.products} products, by `
      + `cross-validation over products (${tuned.folds} folds: each product's photos were scored by weights chosen without them). `
      + `On those held-out photos the right product came first ${pct(tuned.held_out.top1)} of the time and among the first five `
      + `${pct(tuned.held_out.top5)} of the time (the weights before tuning: ${pct(tuned.before.top1)} and ${pct(tuned.before.top5)}).`);
    assert.match(await page.textContent('#threshold-meaning'),
      new RegExp(`^A result is called a confident match when its score is at least ${tuned.min_score.toFixed(3).replace('.', '\\.')}\\. It was chosen aiming for ${pct(tuned.confident_precision_target)} of confident matches to name the right product\\. `
      + `On held-out photos, ${(tuned.held_out.confident_precision ?? 0) < tuned.confident_precision_target ? 'only .* \\(short of the aim' : '\\d+ % of confident matches were right, '}`));

    const shot = photo('Juice/God-Morgon-Orange-Red-Grapefruit-Juice/God-Morgon-Orange-Red-Grapefruit-Juice_001.jpg');
    await upload(page, shot);
    assertSameRanking(await results(page), nativeRanking(mobileclipDir, shot), 'MobileCLIP');
    await page.screenshot({ path: path.join(out, 'desktop-mobileclip.png'), fullPage: true });

    const bad = path.join(out, 'not-a-photo-mobileclip.jpg');
    writeFileSync(bad, 'this is not a photo');
    await upload(page, bad);
    assert.match(await inputError(page), /^not-a-photo-mobileclip\.jpg: not an image/);
    await rankOnImagesOnly(page);
    await upload(page, iconicOf('Oatly-Natural-Oatghurt'));
    assert.equal(await inputError(page), '');
    const r = await results(page);
    assert.equal(r[0].id, 'oatly-natural-oatghurt');
    assert.ok(Math.abs(r[0].score - 1) < 1e-2, `self-similarity ${r[0].score}`);
    assert.deepEqual(await problems(), []);
    await context.close();

    const phone = await openBundle(mobileclipDir, '&threads=1', { width: 375, height: 812 });
    await upload(phone.page, shot);
    assert.ok((await results(phone.page)).length > 0);
    const width = await phone.page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 375, `no horizontal scrolling (${width}px wide)`);
    await phone.page.screenshot({ path: path.join(out, 'phone-mobileclip.png'), fullPage: true });
    await phone.context.close();
  });

  test('?engine=candle on the OpenAI CLIP bundle ranks the same products in the same order as the default engine', async () => {
    const shot = photo('Oatghurt/Oatly-Natural-Oatghurt/Oatly-Natural-Oatghurt_001.jpg');
    const rankings = {};
    for (const engine of ['', 'candle']) {
      const { page, context, wasm, problems } = await openBundle(bundleDir, `&threads=1${engine && `&engine=${engine}`}`);
      assert.equal(await page.getAttribute('body', 'data-state'), 'ready', await page.textContent('#status-text'));
      const expected = engine || 'ours';
      assert.deepEqual(await readyModel(page), { family: 'openai-clip', engine: expected, dtype: 'f16' });
      assert.match(await page.textContent('#model-text'), new RegExp(`\\(OpenAI CLIP, f16 weights\\), run by the ${expected} engine\\.$`));
      assert.deepEqual(wasm, [engine ? '/pkg/candle/clipmatch_bg.wasm' : '/pkg/clipmatch_bg.wasm'], 'the package of that engine only');
      await upload(page, shot);
      rankings[expected] = await results(page);
      if (engine) await page.screenshot({ path: path.join(out, 'desktop-clip-on-candle.png'), fullPage: true });
      assert.deepEqual(await problems(), []);
      await context.close();
    }
    assertSameRanking(rankings.candle, rankings.ours, '?engine=candle vs the default');
    assertSameRanking(rankings.candle, nativeRanking(bundleDir, shot, 'candle'), '?engine=candle vs the native tool on candle');
  });

  test('an unknown ?engine= is refused in one line', async () => {
    const cases = [
      [bundleDir, 'fast', /^The app could not load: unknown engine "fast": the engines are "ours" \(OpenAI CLIP, SigLIP, MobileCLIP's FastViT towers\) and "candle"$/],
    ];
    for (const [dir, engine, expected] of cases) {
      const { page, context } = await openBundle(dir, `&threads=1&engine=${engine}`);
      assert.equal(await page.getAttribute('body', 'data-state'), 'error', engine);
      const text = await page.textContent('#status-text');
      assert.match(text, expected);
      assert.ok(!text.includes('\n'), text);
      if (engine === 'ours') await page.screenshot({ path: path.join(out, 'desktop-engine-refused.png'), fullPage: true });
      await context.close();
    }
  });
}
