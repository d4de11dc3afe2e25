// A phone's photo costs the page at most 64 MB of wasm memory (issue "Phones first"): a 12- and a
// 48-megapixel JPEG, baseline and progressive (made by tests/e2e/phone_photo.py: 4:2:0, EXIF
// orientation 6), each raise the wasm memory by at most 64 MB over what it is once the model has
// loaded, the photo's bytes copied into it included. Read on the tests' own page (hooks/: its
// model worker reports the memory's size after each reply; memory never shrinks, so that is the
// peak). A box drawn on the 48-megapixel photo reranks as `clipmatch query --crop` does.
// Registered by app.test.mjs, which starts the suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import path from 'node:path';
import { root, bundleDir, tool, out, photo, openTestPage, upload, results, inputError, assertSameRanking } from './harness.mjs';
import { nextAnswer, mouseDrag, regionShown, waitForPhoto } from './crop.mjs';

const MAX_GROWTH_BYTES = 64e6;
const source = photo('Juice/Bravo-Apple-Juice/Bravo-Apple-Juice_001.jpg');
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

/** A `width` x `height` phone photo (`kind`: baseline or progressive) in the tests' output folder. */
function phonePhoto(width, height, kind) {
  const file = path.join(out, `phone-${width}x${height}-${kind}.jpg`);
  execFileSync('python3', [path.join(root, 'tests/e2e/phone_photo.py'), source, file, String(width), String(height), kind]);
  return file;
}

/** The model worker's `n`th memory report ({reply, bytes}), once it has come. */
async function memoryReport(page, n) {
  await page.waitForFunction((k) => window.testWasmMemory.length >= k, n, { timeout: 60_000 });
  return page.evaluate((k) => window.testWasmMemory[k - 1], n);
}

/** The native tool's ranking of `region` ([x, y, w, h]) of `shot` on the e2e bundle. */
function nativeRanking(shot, region) {
  const args = ['query', shot, '--catalog', bundleDir, '--model', path.join(bundleDir, 'model'), '--json', '--crop', region.join(',')];
  return JSON.parse(execFileSync(tool, args, { encoding: 'utf8' })).ranking.matches;
}

export function photoMemoryTests() {
  for (const [size, width, height] of [['12 MP', 4000, 3000], ['48 MP', 8000, 6000]]) {
    for (const kind of ['baseline', 'progressive']) {
      test(`memory: a ${size} ${kind} JPEG raises the wasm memory by at most 64 MB${size === '48 MP' ? '; a box on it is searched' : ''}`, async () => {
        const file = phonePhoto(width, height, kind);
        const { page, context, problems } = await openTestPage('&testMemory=1');
        const loaded = await memoryReport(page, 1);
        assert.equal(loaded.reply, 'ready');
        assert.equal(loaded.bytes, await page.evaluate(() => window.clipmatch.ready.wasmMemoryBytes));
        await upload(page, file);
        assert.equal(await inputError(page), '');
        assert.ok((await results(page)).length > 0, 'the photo is ranked');
        const ranked = await memoryReport(page, 2);
        assert.equal(ranked.reply, 'result');
        console.log(`${size} ${kind} JPEG (${mb(statSync(file).size)}): wasm memory ${mb(loaded.bytes)} once loaded, ${mb(ranked.bytes)} after the photo: +${mb(ranked.bytes - loaded.bytes)}`);
        let last = ranked;
        if (size === '48 MP') {
          // Upright 6000x8000: a box around the middle, then the region ranked as natively.
          await waitForPhoto(page);
          assert.deepEqual(await page.$eval('#query-image', (img) => [img.naturalWidth, img.naturalHeight]), [height, width]);
          await nextAnswer(page, () => mouseDrag(page, [0.2, 0.3], [0.7, 0.6]));
          const { region } = await regionShown(page);
          assert.ok(region, 'a region is searched');
          assert.equal(await inputError(page), '');
          assertSameRanking(await results(page), nativeRanking(file, region), `${size} ${kind} region ${region}`, 1e-4);
          last = await memoryReport(page, 3);
          console.log(`${size} ${kind} JPEG: ${mb(last.bytes)} after a region of it: +${mb(last.bytes - loaded.bytes)}`);
        }
        const growth = last.bytes - loaded.bytes;
        assert.ok(growth <= MAX_GROWTH_BYTES, `${size} ${kind}: the wasm memory grew by ${mb(growth)}`);
        assert.deepEqual(await problems(), []);
        await context.close();
      });
    }
  }
}
