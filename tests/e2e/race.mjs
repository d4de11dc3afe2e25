// The hurried shopper: a large photo and then a small one chosen in quick succession (two drops
// in one task, two file picks in one task). The last photo chosen wins: the results, the caption,
// the picture, the box and the model worker's current photo are all the small one's.
// Registered by app.test.mjs, which starts the suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { root, out, env, iconicOf, openApp, openWithModelHeld, upload, results, inputError, rankOnImagesOnly, assertSameRanking, png, watchPage } from './harness.mjs';

/** A 5200 x 5200 PNG of noise, stored (27 MB: reading it takes a while), written under test-output. */
function largePhoto() {
  const file = path.join(out, 'large-noise.png');
  let seed = 12345;
  const noise = () => { seed = (seed * 1103515245 + 12345) >>> 0; return seed >>> 24; };
  writeFileSync(file, png(5200, 5200, { pixel: noise, level: 0 }));
  return file;
}

/** What the page shows of the current photo (once its picture has loaded). */
const shown = async (page) => {
  await page.waitForFunction(() => { const img = window.clipmatch.root.getElementById('query-image'); return img.complete && img.naturalWidth > 0; },
    null, { timeout: 30_000 });
  return page.evaluate(() => {
  const $ = (id) => window.clipmatch.root.getElementById(id);
  return {
    caption: $('query-caption').textContent,
    pictureWidth: $('query-image').naturalWidth,
    region: window.clipmatch.region,
    error: $('input-error').hidden ? '' : $('input-error').textContent,
  };
  });
};

/**
 * Chooses the files at these URLs in one task of the page, by `how`: 'drop' (a drop event each on
 * the drop zone) or 'pick' (the file input's files set and its change event, each in turn).
 */
function chooseInOneTask(page, urls, how) {
  return page.evaluate(async ({ urls, how }) => {
    const files = await Promise.all(urls.map(async (u) => new File([await (await fetch(u)).blob()], u.split('/').pop(), { type: u.endsWith('.png') ? 'image/png' : 'image/jpeg' })));
    const root = window.clipmatch.root;
    for (const file of files) {
      const dt = new DataTransfer();
      dt.items.add(file);
      if (how === 'drop') {
        root.getElementById('drop-zone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
      } else {
        const input = root.getElementById('file-input');
        input.files = dt.files;
        input.dispatchEvent(new Event('change'));
      }
    }
  }, { urls, how });
}

/** Waits until no request is outstanding and the page is ready again, after `before` answers. */
const settled = (page, before) => page.waitForFunction((n) => window.clipmatch.answers > n && window.clipmatch.outstanding === 0
  && document.body.dataset.state === 'ready', before, { timeout: 120_000 });

export function raceTests() {
  test('a large photo and then a small one chosen in one task (drops, file picks): the small one wins', async () => {
    const large = largePhoto();
    const small = iconicOf('Arla-Standard-Milk');
    const served = path.join(out, path.basename(small)); // the page fetches both from its own server
    copyFileSync(small, served);
    const url = (file) => `/${path.relative(root, file).split(path.sep).map(encodeURIComponent).join('/')}`;
    const { page, context, problems } = await openApp(undefined, {}, undefined, '&threads=1');
    await rankOnImagesOnly(page);
    // The small photo alone: what the page must show after the race.
    await upload(page, small);
    assert.equal(await inputError(page), '');
    const alone = await results(page);
    const aloneShown = await shown(page);
    assert.equal(alone[0].id, 'arla-standard-milk');
    for (const how of ['drop', 'pick']) {
      // Another photo first, so that the small one's answer is news.
      await upload(page, iconicOf('Oatly-Natural-Oatghurt'));
      const before = await page.evaluate(() => window.clipmatch.answers);
      await chooseInOneTask(page, [url(large), url(served)], how);
      await settled(page, before);
      assert.deepEqual(await results(page), alone, `${how}: the small photo's results`);
      assert.deepEqual(await shown(page), aloneShown, `${how}: the small photo's caption and picture, no box`);
      // The worker's current photo is the small one: other weights, then image-only weights
      // again, re-rank it as it was ranked alone.
      for (const weight of ['0.5', '0']) {
        const again = await page.evaluate(() => window.clipmatch.answers);
        await page.fill('#weight-text', weight);
        await page.dispatchEvent('#weight-text', 'input');
        await settled(page, again);
      }
      assertSameRanking(await results(page), alone, `${how}: the worker's photo, re-ranked`, 1e-6);
    }
    await page.screenshot({ path: path.join(out, 'desktop-race.png'), fullPage: true });
    assert.deepEqual(await problems(), []);
    await context.close();
  });

  test('photos chosen while the model downloads: the last one is searched once it has loaded', async () => {
    const context = await env.browser.newContext({ viewport: { width: 390, height: 844 } });
    const page = await context.newPage();
    const watch = await watchPage(context, page);
    const release = await openWithModelHeld(context, page);
    await page.waitForSelector('#file-input', { state: 'attached' });
    await page.setInputFiles('#file-input', iconicOf('Oatly-Natural-Oatghurt'));
    await page.setInputFiles('#file-input', iconicOf('Arla-Standard-Milk'));
    const waiting = await page.evaluate(() => ({
      state: document.body.dataset.state,
      caption: window.clipmatch.root.getElementById('query-caption').textContent,
      verdict: window.clipmatch.root.getElementById('verdict').textContent,
      clickable: getComputedStyle(window.clipmatch.root.getElementById('input')).pointerEvents !== 'none',
    }));
    assert.ok(waiting.clickable, 'the photo buttons take clicks while the model loads');
    assert.equal(waiting.state, 'loading');
    assert.equal(waiting.caption, path.basename(iconicOf('Arla-Standard-Milk')));
    assert.match(waiting.verdict, /will be searched as soon as the model has loaded/);
    await page.screenshot({ path: path.join(out, 'phone-photo-while-loading.png'), fullPage: true });
    release();
    await page.waitForFunction(() => window.clipmatch.answers >= 1 && document.body.dataset.state === 'ready', null, { timeout: 120_000 });
    const first = await results(page);
    assert.equal(await page.evaluate(() => window.clipmatch.answers), 1, 'one search: the last photo chosen');
    // The same photo chosen again once loaded ranks the same.
    await upload(page, iconicOf('Arla-Standard-Milk'));
    assertSameRanking(first, await results(page), 'the waiting photo, searched on load', 1e-6);
    assert.deepEqual(await watch.all(), []);
    await context.close();
  });
}
