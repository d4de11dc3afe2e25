// The page against hostile links, bundles and photos, and its recovery from a failing model
// worker (issue "Hardening", item 4). Registered by app.test.mjs, which starts the suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  env, root, bundleDir, tool, out, bundleParam, photo, iconicOf, openApp, openTestPage, watchPage, upload, results,
  inputError, rankOnImagesOnly, assertFindsItself, png, startTestPkgServer,
} from './harness.mjs';

const bundleJson = (dir = bundleDir) => JSON.parse(readFileSync(path.join(dir, 'bundle.json'), 'utf8'));

/** Opens the page with `query` and waits until it is ready or has refused to load. */
async function openRaw(context, query, from = env.base) {
  const page = await context.newPage();
  await page.goto(`${from}index.html?${query}`);
  await page.waitForSelector('body[data-state="ready"], body[data-state="error"]', { timeout: 120_000 });
  return page;
}

/** Every request the context makes (the page's, its workers' and service worker's), as URLs. */
function recordRequests(context) {
  const urls = [];
  context.on('request', (r) => urls.push(r.url()));
  return urls;
}

export function hardeningTests() {
  test('?bundle= on another site (or not a web address) is refused with a message, and nothing is fetched from it', async () => {
    const context = await env.browser.newContext();
    const requests = recordRequests(context);
    const own = new URL(env.base);
    const otherOrigin = new URL(env.isolatedBase); // a real server, with the real bundle: another port is another origin
    const rel = path.relative(root, bundleDir) + '/';
    const hostile = [
      `${otherOrigin.href}${rel}`,
      `//${otherOrigin.host}/${rel}`,
      `http://localhost:${own.port}/${rel}`, // same server, other host name: another origin
      '\\\\evil.example/bundle/',
      'javascript:alert(1)//',
      'data:application/json,{}',
    ];
    for (const [i, value] of hostile.entries()) {
      const page = await openRaw(context, `bundle=${encodeURIComponent(value)}`);
      assert.equal(await page.getAttribute('body', 'data-state'), 'error', value);
      assert.match(await page.textContent('#status-text'), /this page only loads catalogs from its own site \(127\.0\.0\.1:\d+\)/, value);
      if (i === 0) await page.screenshot({ path: path.join(out, 'desktop-bundle-refused.png'), fullPage: true });
      await page.close();
    }
    const foreign = requests.filter((u) => new URL(u).origin !== own.origin);
    assert.deepEqual(foreign, [], 'no request left the page\'s origin');
    assert.deepEqual(requests.filter((u) => u.includes('bundle.json')), [], 'no bundle.json was fetched at all');
    // An absolute address on the page's own origin (without the final slash) is fine.
    const page = await openRaw(context, `bundle=${encodeURIComponent(`${env.base}${rel.replace(/\/$/, '')}`)}`);
    assert.equal(await page.getAttribute('body', 'data-state'), 'ready');
    await context.close();
  });

  test('a bundle.json naming a file outside its folder is refused before anything is fetched', async () => {
    const cases = {
      parent: '../../../README.md',
      absolute: '/README.md',
      url: `${env.base}README.md`,
      encoded: 'thumbs/%2e%2e/%2e%2e/%2e%2e/README.md',
      backslash: 'thumbs\\..\\..\\README.md',
    };
    const context = await env.browser.newContext();
    const requests = recordRequests(context);
    for (const [name, bad] of Object.entries(cases)) {
      const dir = path.join(out, 'hostile-bundles', name);
      mkdirSync(dir, { recursive: true });
      const bundle = bundleJson();
      bundle.files.find((f) => f.path.startsWith('thumbs/')).path = bad;
      writeFileSync(path.join(dir, 'bundle.json'), JSON.stringify(bundle));
      const page = await openRaw(context, `bundle=${bundleParam(dir)}`);
      assert.equal(await page.getAttribute('body', 'data-state'), 'error', name);
      assert.match(await page.textContent('#status-text'), /^The app could not load: bundle\.json lists a file that .*nothing was loaded from it$/, name);
      await page.close();
    }
    assert.deepEqual(requests.filter((u) => /README|\.safetensors|vectors\.bin|catalog\.json|thumbs\//.test(u)), [], 'no file of those bundles was fetched');
    await context.close();
  });

  test('after a successful load the cache holds only the current bundle\'s files (f16 bundle, then int8)', async () => {
    const int8Dir = path.join(out, 'bundle-int8');
    rmSync(int8Dir, { recursive: true, force: true });
    // The e2e bundle is itself a catalog folder (catalog.json, vectors.bin, thumbs/) with its model.
    execFileSync(tool, ['bundle', '--catalog', bundleDir, '--model', path.join(bundleDir, 'model'), '--out', int8Dir, '--dtype', 'int8'], { stdio: 'pipe' });
    const a = bundleJson();
    const b = bundleJson(int8Dir);
    const weightsSha = (bundle) => bundle.files.find((f) => f.path === bundle.model.weights).sha256;
    assert.notEqual(weightsSha(a), weightsSha(b), 'the two bundles differ');

    const { page, context } = await openApp();
    await page.waitForFunction(() => window.clipmatch.pruned, null, { timeout: 30_000 });
    // Leftovers of older versions, and another application's cache that must stay.
    await page.evaluate(async () => {
      await (await caches.open('clipmatch-files-v1')).put(new URL(`/.clipmatch-cache/${'0'.repeat(64)}`, location.origin).href, new Response('old'));
      await (await caches.open('clipmatch-files-v0')).put('/old', new Response('old'));
      await (await caches.open('another-app')).put('/theirs', new Response('theirs'));
    });
    await page.goto(`${env.base}index.html?bundle=${bundleParam(int8Dir)}`);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    await page.waitForFunction(() => window.clipmatch.pruned, null, { timeout: 30_000 });
    const cached = await page.evaluate(async () => ({
      names: await caches.keys(),
      keys: (await (await caches.open('clipmatch-files-v1')).keys()).map((r) => r.url),
    }));
    const key = (sha) => new URL(`/.clipmatch-cache/${sha}`, env.base).href;
    const expected = [...b.files.map((f) => key(f.sha256)), new URL(`${path.relative(root, int8Dir)}/bundle.json`, env.base).href];
    assert.deepEqual(new Set(cached.keys), new Set(expected), 'exactly bundle B\'s files and its bundle.json');
    assert.ok(!cached.keys.includes(key(weightsSha(a))), 'bundle A\'s weights are gone');
    // (The service worker's copy of the app's own files, clipmatch-app-<version>, is not the loader's.)
    assert.deepEqual(cached.names.filter((n) => !n.startsWith('clipmatch-app-')).sort(), ['another-app', 'clipmatch-files-v1']);
    await rankOnImagesOnly(page);
    await assertFindsItself(page, 'Arla-Sour-Milk');
    await context.close();
  });

  test('every thumbnail comes with the catalog, before "Ready"; ranking two photos fetches nothing', async () => {
    const context = await env.browser.newContext();
    const requests = recordRequests(context);
    const page = await context.newPage();
    const watch = await watchPage(context, page);
    await page.goto(`${env.base}index.html?bundle=${bundleParam()}`);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    // The worker's downloads are visible here (so an empty list below means something).
    const thumbs = bundleJson().files.filter((f) => f.path.startsWith('thumbs/')).map((f) => f.path);
    for (const t of thumbs) assert.ok(requests.some((u) => u.endsWith(t)), `${t} was fetched while loading`);
    requests.length = 0;
    await rankOnImagesOnly(page);
    for (const product of ['Arla-Mild-Vanilla-Yoghurt', 'God-Morgon-Orange-Juice']) {
      await assertFindsItself(page, product);
      await page.waitForFunction(() => [...window.clipmatch.root.querySelectorAll('#result-list .thumb')].every((img) => img.complete && img.naturalWidth > 0),
        null, { timeout: 10_000 });
    }
    const srcs = await page.$$eval('#result-list .thumb', (imgs) => imgs.map((img) => img.src));
    assert.ok(srcs.length === 5 && srcs.every((s) => s.startsWith('blob:')), 'thumbnails are the checked bytes from the load');
    assert.deepEqual(requests.filter((u) => !u.startsWith('blob:')), [], 'no request after "Ready" while ranking photos');
    assert.deepEqual(await watch.all(), []);
    await context.close();
  });

  /** Each file in turn: its one-line message (never "unreachable", no results), then a real photo ranks right. */
  async function hostilePhotos(files) {
    const { page, context } = await openApp(undefined, {}, env.base, '&threads=1');
    await rankOnImagesOnly(page);
    const failures = [];
    for (const [name, bytes, expected] of files) {
      const file = path.join(out, name);
      writeFileSync(file, bytes);
      const t0 = Date.now();
      await upload(page, file);
      const took = Date.now() - t0;
      const message = await inputError(page);
      const shown = await page.$$eval('#result-list li', (l) => l.length);
      if (!expected.test(message) || /unreachable/i.test(message) || message.includes('\n') || shown > 0) {
        failures.push(`${name}: "${message}", ${shown} results shown (${took} ms)`);
      }
      if (name === 'truncated.jpg') await page.screenshot({ path: path.join(out, 'desktop-corrupt-file.png'), fullPage: true });
      if (name === 'thin-16384.png') await page.screenshot({ path: path.join(out, 'desktop-thin-image.png'), fullPage: true });
      await assertFindsItself(page, 'Oatly-Natural-Oatghurt');
    }
    await context.close();
    assert.deepEqual(failures, [], 'each hostile photo gets its own one-line message');
  }

  test('an empty, a non-image and a truncated file get a one-line message; the next real photo ranks correctly', async () => {
    const good = readFileSync(photo('Oatghurt/Oatly-Natural-Oatghurt/Oatly-Natural-Oatghurt_001.jpg'));
    await hostilePhotos([
      ['empty.jpg', Buffer.alloc(0), /^empty\.jpg: the file is empty \(0 bytes\)$/],
      ['not-a-photo.jpg', Buffer.from('this is not a photo, whatever its name says'), /^not-a-photo\.jpg: not an image/],
      ['truncated.jpg', good.subarray(0, 5000), /^truncated\.jpg: the JPEG data is corrupt or truncated/],
    ]);
  });

  // Alone on its page: refused before it is read, a file leaves the previous answer shown.
  test('a file one byte over the wasm side\'s limit (maxPhotoBytes, 64 MiB) is refused before it is read', async () => {
    await hostilePhotos([
      ['oversized.jpg', Buffer.alloc((64 << 20) + 1), /^oversized\.jpg: the file is 67\.1 MB, over the limit of 67\.1 MB$/],
    ]);
  });

  test('1 x 16384 and 1 x 9000 PNGs are refused as too thin; the next real photo ranks correctly', async () => {
    await hostilePhotos([
      ['thin-16384.png', png(1, 16384), /^thin-16384\.png: .*too thin/],
      ['thin-9000.png', png(1, 9000), /^thin-9000\.png: .*too thin/],
    ]);
  });

  // The faults come from the tests' own page (tests/e2e/hooks/): the shipped page has no such hooks.
  const faultTest = (fault, extra, check) => test(`recovery (test page, ?testFault=${fault}${extra}): ${check.title}`, async () => {
    const { page, context, problems } = await openTestPage(`&testFault=${fault}${extra}`, await (check.server || (() => env.base))());
    await rankOnImagesOnly(page);
    await check.run(page);
    // Errors the check expects (e.g. a panic logged by the wasm package) must be seen; no others.
    const seen = await problems();
    const expected = check.problems || [];
    for (const e of expected) assert.ok(seen.some((p) => e.test(p)), `${e} in ${JSON.stringify(seen)}`);
    assert.deepEqual(seen.filter((p) => !expected.some((e) => e.test(p))), []);
    await context.close();
  });

  faultTest('trap-once', '', {
    title: 'a trap restarts the worker and the photo is tried again, successfully',
    async run(page) {
      await assertFindsItself(page, 'Arla-Standard-Milk');
      assert.equal(await page.evaluate(() => window.clipmatch.restarts), 1);
      assert.match(await page.textContent('#status-text'), /^Ready again/);
    },
  });

  faultTest('trap-twice', '', {
    title: 'a photo that traps twice gets a human message; the next photo works',
    async run(page) {
      await upload(page, iconicOf('Arla-Standard-Milk'));
      const message = await inputError(page);
      assert.match(message, /^Arla-Standard-Milk_Iconic\.jpg: the model failed on this photo twice .* Try another photo\.$/);
      assert.doesNotMatch(message, /unreachable/i);
      await page.screenshot({ path: path.join(out, 'desktop-model-failed.png'), fullPage: true });
      await assertFindsItself(page, 'Oatly-Natural-Oatghurt');
      assert.equal(await page.evaluate(() => window.clipmatch.restarts), 2);
    },
  });

  faultTest('hang-once', '&requestTimeoutMs=2000', {
    title: 'no answer within the time limit restarts the worker and retries',
    async run(page) {
      const t0 = Date.now();
      await assertFindsItself(page, 'Arla-Standard-Milk');
      assert.ok(Date.now() - t0 >= 2000, 'the answer came after the time limit');
      assert.equal(await page.evaluate(() => window.clipmatch.restarts), 1);
    },
  });

  faultTest('hang-twice', '&requestTimeoutMs=1500', {
    title: 'a photo that times out twice gets a message naming the limit',
    async run(page) {
      await upload(page, iconicOf('Arla-Standard-Milk'));
      assert.match(await inputError(page), /^Arla-Standard-Milk_Iconic\.jpg: no answer within 1\.5 s, twice, so the model was restarted\. Try another photo\.$/);
      await assertFindsItself(page, 'Oatly-Natural-Oatghurt');
    },
  });

  faultTest('crash-once', '', {
    title: 'a crashed worker (its error event) is restarted and the photo retried',
    async run(page) {
      await assertFindsItself(page, 'Arla-Standard-Milk');
      assert.equal(await page.evaluate(() => window.clipmatch.restarts), 1);
    },
  });

  faultTest('trap-once', '', {
    title: 'a photo chosen while the worker restarts waits for it (never "not loaded yet")',
    async run(page) {
      const next = readFileSync(iconicOf('Oatly-Natural-Oatghurt')).toString('base64');
      const before = await page.evaluate(() => window.clipmatch.answers);
      await page.setInputFiles('#file-input', iconicOf('Arla-Standard-Milk'));
      // In one go inside the page: as soon as the restart begins, choose the next photo.
      const readyWhenChosen = await page.evaluate(async (b64) => {
        while (window.clipmatch.restarts < 1) await new Promise((r) => setTimeout(r, 2));
        const ready = window.clipmatch.model.ready;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const dt = new DataTransfer();
        dt.items.add(new File([bytes], 'next.jpg', { type: 'image/jpeg' }));
        const input = window.clipmatch.root.querySelector('#file-input');
        input.files = dt.files;
        input.dispatchEvent(new Event('change'));
        return ready;
      }, next);
      assert.equal(readyWhenChosen, false, 'the next photo was chosen while the new worker was loading');
      await page.waitForFunction((n) => window.clipmatch.answers > n && document.body.dataset.state === 'ready', before, { timeout: 60_000 });
      assert.equal(await inputError(page), '');
      const r = await results(page);
      assert.equal(r[0].id, 'oatly-natural-oatghurt');
    },
  });

  // A real panic in the wasm package (the test-hooks build's panicForTest, in the matcher's place).
  const PANIC = /it panicked: a panic made by the test page, at src\/web\/panic_hook\.rs:\d+\)/;
  let testPkgBase = null;
  const testPkgServer = async () => (testPkgBase ||= await startTestPkgServer());
  // The hook logs the panic in the worker's console: that error is expected, no other.
  const panicLogged = [/^console error: .*panicked at src\/web\/panic_hook\.rs.*a panic made by the test page/s];

  faultTest('panic-once', '', {
    title: "a panic's message reaches the page while the worker restarts; the photo is tried again",
    server: testPkgServer,
    problems: panicLogged,
    async run(page) {
      const said = [];
      await page.exposeFunction('statusSaid', (text) => said.push(text));
      await page.evaluate(() => {
        const status = window.clipmatch.root.querySelector('#status-text');
        new MutationObserver(() => window.statusSaid(status.textContent)).observe(status, { childList: true, characterData: true, subtree: true });
      });
      await assertFindsItself(page, 'Arla-Standard-Milk');
      assert.equal(await page.evaluate(() => window.clipmatch.restarts), 1);
      assert.ok(said.some((t) => /^The model stopped \(/.test(t) && PANIC.test(t)), `the restart says why: ${JSON.stringify(said)}`);
      assert.match(await page.textContent('#status-text'), /^Ready again: the model was restarted after a failure \(it panicked: /);
      assert.match(await page.textContent('#status-text'), PANIC);
    },
  });

  faultTest('panic-twice', '', {
    title: "a photo that panics twice gets a message carrying the panic's; the next photo works",
    server: testPkgServer,
    problems: panicLogged,
    async run(page) {
      await upload(page, iconicOf('Arla-Standard-Milk'));
      const message = await inputError(page);
      assert.match(message, /^Arla-Standard-Milk_Iconic\.jpg: the model failed on this photo twice \(a panic made by the test page, at src\/web\/panic_hook\.rs:\d+\) and was restarted\. Try another photo\.$/);
      assert.doesNotMatch(message, /unreachable/i);
      await page.screenshot({ path: path.join(out, 'desktop-model-panicked.png'), fullPage: true });
      await assertFindsItself(page, 'Oatly-Natural-Oatghurt');
    },
  });

  test('the page runs under its Content-Security-Policy; a violation would be seen', async () => {
    const { page, context, problems } = await openApp(undefined, {}, env.isolatedBase);
    const policy = await page.getAttribute('meta[http-equiv="Content-Security-Policy"]', 'content');
    for (const directive of ["default-src 'self'", "script-src 'self' 'wasm-unsafe-eval'", "img-src 'self' blob:", "object-src 'none'", "base-uri 'none'"]) {
      assert.ok(policy.includes(directive), `${directive} in ${policy}`);
    }
    const header = await page.evaluate(async () => (await fetch('www/worker.js')).headers.get('content-security-policy'));
    assert.equal(header, policy, 'the workers get the same policy as a header');
    assert.ok(await page.evaluate(() => window.clipmatch.ready.threading.pool) > 1, 'the multi-threaded build ran under it');
    await rankOnImagesOnly(page);
    await assertFindsItself(page, 'Arla-Standard-Milk');
    assert.deepEqual(await problems(), [], 'nothing was blocked while loading, ranking and re-ranking');
    // Controls: a data: image in the page and a fetch to another site from a worker are blocked and seen.
    await page.evaluate(() => { const img = new Image(); img.src = 'data:image/gif;base64,R0lGODlhAQABAAAAACw='; document.body.append(img); });
    await page.evaluate(() => {
      // A worker with the app workers' reporter (www/report-csp.js) connecting to another site.
      const code = `import '${new URL('www/report-csp.js', location.href)}'; fetch('http://127.0.0.1:9/elsewhere').catch(() => {});`;
      window.controlWorker = new Worker(URL.createObjectURL(new Blob([code], { type: 'text/javascript' })), { type: 'module' });
    });
    await page.waitForFunction(() => true, null, { timeout: 100 });
    await new Promise((r) => setTimeout(r, 1500));
    const seen = await problems();
    assert.ok(seen.some((p) => /img-src/.test(p)), `the page's violation is seen: ${seen}`);
    assert.ok(seen.some((p) => /connect-src\): http:\/\/127\.0\.0\.1:9\/elsewhere/.test(p)), `the worker's violation is seen: ${seen}`);
    await context.close();
  });
}
