// The box drawn on the photo (issue 11, item 3): a mouse drag, a touch drag or keys pick a region
// of the decoded, upright photo and the ranking reruns on it in the worker, equal to
// `clipmatch query PHOTO --crop X,Y,W,H` on the same bundle; "Whole photo" and a new photo clear
// it; a bad region says one line. Registered by app.test.mjs, which starts the suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { root, bundleDir, tool, out, photo, openApp, upload, results, inputError, rankOnImagesOnly, assertSameRanking as assertRankingNear } from './harness.mjs';

const juice = photo('Juice/God-Morgon-Orange-Red-Grapefruit-Juice/God-Morgon-Orange-Red-Grapefruit-Juice_001.jpg');
const milk = photo('Milk/Arla-Standard-Milk/Arla-Standard-Milk_001.jpg');
// EXIF orientation 6: stored 640x480, shown (and decoded) upright as 480x640.
const rotated = path.join(root, 'tests/fixtures/images/exif_rotated.jpg');

/** The native tool's ranking of `shot` (a region of it: [x, y, w, h]) on the e2e bundle. */
export function nativeRanking(shot, region, extra = []) {
  const args = ['query', shot, '--catalog', bundleDir, '--model', path.join(bundleDir, 'model'), '--json', ...extra];
  if (region) args.push('--crop', region.join(','));
  const json = JSON.parse(execFileSync(tool, args, { encoding: 'utf8' }));
  assert.deepEqual(json.crop, region ? { x: region[0], y: region[1], width: region[2], height: region[3] } : null);
  return json.ranking.matches;
}

/** Same products in the same order, scores as close as app.test.mjs holds the page to the tool. */
const assertSameRanking = (page, native, what) => assertRankingNear(page, native, what, 1e-4);

/** Runs `action` and waits for the worker's next answer (a ranking or an error) and "ready". */
export async function nextAnswer(page, action) {
  const before = await page.evaluate(() => window.clipmatch.answers);
  await action();
  await page.waitForFunction((n) => window.clipmatch.answers > n, before, { timeout: 60_000 });
  await page.waitForSelector('body[data-state="ready"]', { timeout: 60_000 });
}

/** The shown photo's rectangle on the page and its natural (upright) size. */
export const photoBox = (page) => page.$eval('#query-image', (img) => {
  const r = img.getBoundingClientRect();
  return { x: r.left + img.clientLeft, y: r.top + img.clientTop, width: img.clientWidth, height: img.clientHeight, natural: [img.naturalWidth, img.naturalHeight] };
});

export async function waitForPhoto(page) {
  await page.waitForFunction(() => window.clipmatch.root.querySelector('#query-image').naturalWidth > 0, null, { timeout: 10_000 });
}

/** Drags with the mouse from one point to another, given as fractions of the shown photo. */
export async function mouseDrag(page, [fx0, fy0], [fx1, fy1]) {
  await page.$eval('#query-image', (img) => img.scrollIntoView({ block: 'center' }));
  const b = await photoBox(page);
  await page.mouse.move(b.x + fx0 * b.width, b.y + fy0 * b.height);
  await page.mouse.down();
  await page.mouse.move(b.x + fx1 * b.width, b.y + fy1 * b.height, { steps: 6 });
  await page.mouse.up();
}

/** The region the page searches ([x, y, w, h]), or null, and what it says about it. */
export async function regionShown(page) {
  return page.evaluate(() => {
    const r = window.clipmatch.region;
    return { region: r && [r.x, r.y, r.width, r.height], status: window.clipmatch.root.querySelector('#crop-status').textContent, boxShown: !window.clipmatch.root.querySelector('#crop-box').hidden };
  });
}

/** The region a drag between two fractions of the photo should give, in upright pixels. */
export function expectedRegion(natural, [fx0, fy0], [fx1, fy1]) {
  const [w, h] = natural;
  const x = Math.round(fx0 * w), y = Math.round(fy0 * h);
  return [x, y, Math.round(fx1 * w) - x, Math.round(fy1 * h) - y];
}

export const assertNear = (got, expected, what) => got.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) <= 2, `${what}: ${got} vs ${expected}`));

export function cropTests() {
  test('crop: a box dragged with the mouse reranks that region as clipmatch query --crop does; weights apply to it; "Whole photo" goes back', async () => {
    const { page, context, problems } = await openApp({ width: 1280, height: 800 }, {}, undefined, '&threads=1');
    await upload(page, juice);
    await waitForPhoto(page);
    const whole = await results(page);
    assertSameRanking(whole, nativeRanking(juice), 'whole photo');
    assert.match(await page.textContent('#crop-status'), /^Results for the whole photo\.$/);

    const from = [0.1, 0.15], to = [0.6, 0.7];
    await nextAnswer(page, () => mouseDrag(page, from, to));
    const shown = await regionShown(page);
    const natural = (await photoBox(page)).natural;
    assertNear(shown.region, expectedRegion(natural, from, to), 'the region is where the mouse went, in the photo\'s pixels');
    assert.equal(shown.status, `Results for the selected region: ${shown.region[2]} × ${shown.region[3]} pixels at (${shown.region[0]}, ${shown.region[1]}) of the photo.`);
    assert.equal(shown.boxShown, true);
    assert.equal(await page.isVisible('#crop-clear'), true, 'the "Whole photo" button shows');
    const cropped = await results(page);
    assertSameRanking(cropped, nativeRanking(juice, shown.region), 'the region');
    assert.notDeepEqual(cropped.map((r) => r.score), whole.map((r) => r.score), 'the region ranks differently from the whole photo');
    // The box is drawn where the mouse went.
    const b = await photoBox(page);
    const drawn = await page.$eval('#crop-box', (e) => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; });
    assertNear(drawn, [b.x + from[0] * b.width, b.y + from[1] * b.height, (to[0] - from[0]) * b.width, (to[1] - from[1]) * b.height], 'the box on the page');
    await page.screenshot({ path: path.join(out, 'desktop-crop.png'), fullPage: true });

    // Other weights rerank the region, not the whole photo.
    await nextAnswer(page, () => rankOnImagesOnly(page));
    assertSameRanking(await results(page), nativeRanking(juice, shown.region, ['--text-weight', '0', '--image-weight', '1']), 'the region on images only');
    // "Whole photo": the whole photo's ranking with these weights, and no box.
    await nextAnswer(page, () => page.click('#crop-clear'));
    assertSameRanking(await results(page), nativeRanking(juice, null, ['--text-weight', '0', '--image-weight', '1']), 'back to the whole photo');
    assert.deepEqual(await regionShown(page), { region: null, status: 'Results for the whole photo.', boxShown: false });
    assert.equal(await page.isVisible('#crop-clear'), false);
    assert.equal(await inputError(page), '');
    assert.deepEqual(await problems(), [], 'no errors, no CSP violations');
    await context.close();
  });

  test('crop: keys make and change the box (arrows move, Shift+arrows resize, Escape clears); a new photo clears it', async () => {
    const { page, context, problems } = await openApp({ width: 1280, height: 800 }, {}, undefined, '&threads=1');
    await upload(page, juice);
    await waitForPhoto(page);
    const [w, h] = (await photoBox(page)).natural;
    await page.focus('#crop-area');
    // The first arrow makes a box over the middle half; Shift+Left narrows it, Down moves it down,
    // each by a fiftieth of the photo's side; the ranking reruns once the keys stop.
    await nextAnswer(page, async () => {
      await page.keyboard.press('ArrowRight');
      for (let i = 0; i < 3; i++) await page.keyboard.press('Shift+ArrowLeft');
      for (let i = 0; i < 2; i++) await page.keyboard.press('ArrowDown');
    });
    const step = [Math.round(w / 50), Math.round(h / 50)];
    const x0 = Math.round(w / 4), y0 = Math.round(h / 4);
    const expected = [x0, y0 + 2 * step[1], Math.round((3 * w) / 4) - x0 - 3 * step[0], Math.round((3 * h) / 4) - y0];
    const shown = await regionShown(page);
    assert.deepEqual(shown.region, expected);
    assertSameRanking(await results(page), nativeRanking(juice, expected), 'the keyboard\'s region');
    assert.match(await page.getAttribute('#crop-area', 'aria-label'), /draw a box around the product/);
    assert.match(await page.textContent('#crop-hint'), /an arrow makes a box and the arrows move it, Shift\+arrows resize it, Escape goes back to the whole photo/);
    await page.screenshot({ path: path.join(out, 'desktop-crop-keys.png'), fullPage: true });

    await nextAnswer(page, () => page.keyboard.press('Escape'));
    assert.deepEqual(await regionShown(page), { region: null, status: 'Results for the whole photo.', boxShown: false });
    assertSameRanking(await results(page), nativeRanking(juice), 'Escape: the whole photo');

    // Enter makes the box at once; then a new photo comes without it.
    await nextAnswer(page, () => page.keyboard.press('Enter'));
    assert.ok((await regionShown(page)).region, 'Enter made a box');
    await upload(page, milk);
    assert.deepEqual(await regionShown(page), { region: null, status: 'Results for the whole photo.', boxShown: false });
    assertSameRanking(await results(page), nativeRanking(milk), 'the new photo, whole');
    assert.deepEqual(await problems(), []);
    await context.close();
  });

  test('crop: a box too small to search says so in one line, the results stay; the next photo works', async () => {
    const { page, context } = await openApp({ width: 1280, height: 800 }, {}, undefined, '&threads=1');
    await upload(page, juice);
    await waitForPhoto(page);
    const whole = await results(page);
    const b = await photoBox(page);
    // 60 % of the width but 2 screen pixels high: a few of the photo's pixels.
    await nextAnswer(page, () => mouseDrag(page, [0.2, 0.5], [0.8, 0.5 + 2 / b.height]));
    const message = await inputError(page);
    assert.match(message, /^The box: the region is \d+x\d pixels, too small: each side must be at least 8 pixels$/);
    assert.ok(!message.includes('\n'), message);
    assert.equal(await page.isVisible('#answer'), true, 'the photo and its results stay');
    assert.deepEqual(await results(page), whole);
    assert.deepEqual(await regionShown(page), { region: null, status: 'Results for the whole photo.', boxShown: false });
    await page.screenshot({ path: path.join(out, 'desktop-crop-too-small.png'), fullPage: true });
    await upload(page, milk);
    assert.equal(await inputError(page), '');
    assertSameRanking(await results(page), nativeRanking(milk), 'the next photo');
    await context.close();
  });

  test('crop: on an EXIF-rotated photo the box is in the upright image\'s pixels (phone, touch drag)', async () => {
    const { page, context, problems } = await openApp({ width: 390, height: 844 }, { hasTouch: true, isMobile: true }, undefined, '&threads=1');
    await upload(page, rotated);
    await waitForPhoto(page);
    const b = await photoBox(page);
    assert.deepEqual(b.natural, [480, 640], 'the page shows the photo upright');
    assert.equal(await page.$eval('#crop-area', (e) => getComputedStyle(e).touchAction), 'none');
    // A finger drag over the lower part of the photo: below y = 480, which only the upright frame has.
    const from = [0.15, 0.78], to = [0.85, 0.97];
    const cdp = await context.newCDPSession(page);
    const touch = (type, [fx, fy]) => cdp.send('Input.dispatchTouchEvent', {
      type, touchPoints: type === 'touchEnd' ? [] : [{ x: b.x + fx * b.width, y: b.y + fy * b.height }],
    });
    await nextAnswer(page, async () => {
      await touch('touchStart', from);
      for (let i = 1; i <= 6; i++) await touch('touchMove', [from[0] + ((to[0] - from[0]) * i) / 6, from[1] + ((to[1] - from[1]) * i) / 6]);
      await touch('touchEnd', to);
    });
    const shown = await regionShown(page);
    assertNear(shown.region, expectedRegion(b.natural, from, to), 'the region is where the finger went, upright');
    assert.ok(shown.region[1] + shown.region[3] > 480, `the region ${shown.region} reaches below the stored frame's height`);
    assertSameRanking(await results(page), nativeRanking(rotated, shown.region), 'the region of the rotated photo');
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok(width <= 390, `no horizontal scrolling (${width}px wide)`);
    await page.screenshot({ path: path.join(out, 'phone-crop.png'), fullPage: true });
    assert.deepEqual(await problems(), []);
    await context.close();
  });

  test('crop: a restarted model worker is given the photo and its region again, so reranking still ranks the region', async () => {
    const { page, context } = await openApp({ width: 1280, height: 800 }, {}, undefined, '&threads=1');
    await upload(page, juice);
    await waitForPhoto(page);
    await nextAnswer(page, () => mouseDrag(page, [0.3, 0.2], [0.9, 0.8]));
    const { region } = await regionShown(page);
    // As after a crash: the worker is replaced and forgets the photo (model-worker.js).
    await page.evaluate(() => window.clipmatch.model.fail('crash'));
    await page.waitForSelector('body[data-state="ready"]', { timeout: 60_000 });
    await nextAnswer(page, () => rankOnImagesOnly(page));
    assert.equal(await inputError(page), '');
    assert.deepEqual((await regionShown(page)).region, region);
    assertSameRanking(await results(page), nativeRanking(juice, region, ['--text-weight', '0', '--image-weight', '1']), 'the region, after a restart');
    // And a new region on that worker, then the whole photo, without the photo being sent again.
    await nextAnswer(page, () => mouseDrag(page, [0.05, 0.05], [0.5, 0.5]));
    const second = (await regionShown(page)).region;
    assertSameRanking(await results(page), nativeRanking(juice, second, ['--text-weight', '0', '--image-weight', '1']), 'a second region');
    await nextAnswer(page, () => page.click('#crop-clear'));
    assertSameRanking(await results(page), nativeRanking(juice, null, ['--text-weight', '0', '--image-weight', '1']), 'the whole photo');
    await context.close();
  });
}
