// Offline and installable (issue 12, item 3): after one visit the app opens and ranks with the
// browser context offline; a new version of the app's files (app-files.json's hashes) is taken
// whole at the next visit, never mixed with the old one; the web app manifest is served and valid.
// Registered by app.test.mjs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { env, root, bundleDir, bundleParam, out, watchPage, rankOnImagesOnly, assertFindsItself, startServer, eventually } from './harness.mjs';

/** The app's versions kept by the service worker: {name: [paths]} of complete ones. */
export const keptVersions = (page) => page.evaluate(async () => {
  const kept = {};
  for (const name of await caches.keys()) {
    if (!name.startsWith('clipmatch-app-')) continue;
    const keys = (await (await caches.open(name)).keys()).map((r) => new URL(r.url).pathname);
    if (keys.some((k) => k.endsWith('/app-files.json'))) kept[name] = keys;
  }
  return kept;
});

export function offlineTests() {
  test('after one visit the app opens and ranks a photo offline', async () => {
    const viewport = { width: 390, height: 844 };
    const context = await env.browser.newContext({ viewport });
    const page = await context.newPage();
    const watch = await watchPage(context, page);
    const url = `${env.base}index.html?bundle=${bundleParam()}`;
    await page.goto(url);
    // The service worker registers, the page reloads once under it (isolation), then loads.
    await eventually(page, async (p) => (await p.getAttribute('body', 'data-state')) === 'ready' && (await p.evaluate(() => self.crossOriginIsolated)), 60_000);
    const list = JSON.parse(readFileSync(path.join(root, 'app-files.json'), 'utf8'));
    const kept = await keptVersions(page);
    assert.deepEqual(Object.keys(kept), [`clipmatch-app-${list.version}`], 'one version kept, named by its hash');
    const files = kept[`clipmatch-app-${list.version}`];
    for (const f of ['/index.html', '/www/clipmatch-search.js', '/www/worker.js', '/www/clipmatch-search.css', '/manifest.webmanifest']) assert.ok(files.includes(f), `${f} kept`);
    assert.ok(files.some((f) => /^\/pkg\/(threads\/)?clipmatch_bg\.wasm$/.test(f)), `the wasm package used is kept: ${files.join(' ')}`);

    // Installable: Chromium finds nothing missing (manifest, icons, service worker) but that a test
    // context is incognito-like.
    const cdp = await context.newCDPSession(page);
    assert.deepEqual((await cdp.send('Page.getAppManifest')).errors, []);
    const { installabilityErrors } = await cdp.send('Page.getInstallabilityErrors');
    assert.deepEqual(installabilityErrors.map((e) => e.errorId).filter((id) => id !== 'in-incognito'), []);
    await cdp.detach();

    await context.setOffline(true);
    await page.reload();
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    assert.match(await page.textContent('#status-text'), /loaded from this device/);
    assert.equal(await page.evaluate(() => navigator.onLine), false);
    await rankOnImagesOnly(page);
    await assertFindsItself(page, 'Arla-Standard-Milk');
    await page.screenshot({ path: path.join(out, 'offline-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.screenshot({ path: path.join(out, 'offline-desktop.png'), fullPage: true });
    assert.deepEqual(await watch.all(), []);
    await context.close();
  });

  test('the web app manifest is served and names the icons, which exist', async () => {
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await page.goto(`${env.base}index.html?bundle=${bundleParam()}&threads=1`);
    const manifest = await page.evaluate(async () => {
      const href = document.querySelector('link[rel="manifest"]').href;
      const response = await fetch(href);
      const json = await response.json();
      const icons = await Promise.all(json.icons.map(async (i) => (await fetch(new URL(i.src, href))).status));
      return { type: response.headers.get('content-type'), json, icons };
    });
    assert.equal(manifest.type, 'application/manifest+json');
    assert.equal(manifest.json.display, 'standalone');
    assert.deepEqual(manifest.icons, manifest.json.icons.map(() => 200));
    assert.ok(manifest.json.icons.some((i) => i.sizes === '512x512' && i.type === 'image/png'));
    await context.close();
  });

  test('new app files are taken whole at the next visit, never mixed with the old ones', async () => {
    // A copy of the app whose www/style.css and app-files.json the test can change.
    const dir = path.join(out, 'site-update');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(path.join(dir, 'www'), { recursive: true });
    for (const f of ['index.html', 'manifest.webmanifest', 'pkg', 'isolation-sw.js']) symlinkSync(path.join(root, f), path.join(dir, f));
    for (const f of readdirSync(path.join(root, 'www'))) {
      if (f === 'style.css') copyFileSync(path.join(root, 'www', f), path.join(dir, 'www', f));
      else symlinkSync(path.join(root, 'www', f), path.join(dir, 'www', f));
    }
    symlinkSync(bundleDir, path.join(dir, 'bundle'));
    const list = JSON.parse(readFileSync(path.join(root, 'app-files.json'), 'utf8'));
    writeFileSync(path.join(dir, 'app-files.json'), JSON.stringify(list));
    const base = await startServer({ dir });

    const context = await env.browser.newContext();
    const page = await context.newPage();
    const watch = await watchPage(context, page);
    await page.goto(`${base}index.html?bundle=bundle/`);
    await eventually(page, async (p) => (await p.getAttribute('body', 'data-state')) === 'ready' && (await p.evaluate(() => self.crossOriginIsolated)), 60_000);
    const v1 = `clipmatch-app-${list.version}`;
    assert.deepEqual(Object.keys(await keptVersions(page)), [v1]);
    const h1Colour = (p) => p.$eval('h1', (e) => getComputedStyle(e).color);
    const before = await h1Colour(page);

    // Version 2: one file changes, and the list with it.
    const css = `${readFileSync(path.join(root, 'www', 'style.css'), 'utf8')}h1 { color: rgb(1, 2, 3); }\n`;
    writeFileSync(path.join(dir, 'www', 'style.css'), css);
    const files = list.files.map((f) => (f.path === 'www/style.css' ? { ...f, bytes: Buffer.byteLength(css), sha256: createHash('sha256').update(css).digest('hex') } : f));
    const version = createHash('sha256').update(JSON.stringify(files)).digest('hex');
    writeFileSync(path.join(dir, 'app-files.json'), JSON.stringify({ ...list, version, files }));
    const v2 = `clipmatch-app-${version}`;

    // The next visit still opens version 1 whole (the new one is fetched meanwhile)...
    await page.reload();
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    assert.equal(await h1Colour(page), before, 'this visit: the old style');
    await eventually(page, async (p) => Object.keys(await keptVersions(p)).includes(v2));
    // ...and its later requests stay on version 1, though version 2 is complete.
    const cssNow = await page.evaluate(async () => (await fetch('www/style.css')).text());
    assert.ok(!cssNow.includes('rgb(1, 2, 3)'), 'a page keeps the version it opened with');
    // The visit after: version 2, and version 1 is gone once no page uses it.
    await page.reload();
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    assert.equal(await h1Colour(page), 'rgb(1, 2, 3)', 'the new style');
    // Each visit prunes the versions no page uses: the one before has gone now.
    await page.reload();
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    await eventually(page, async (p) => JSON.stringify(Object.keys(await keptVersions(p))) === JSON.stringify([v2]));
    await rankOnImagesOnly(page);
    await assertFindsItself(page, 'Arla-Standard-Milk');
    assert.deepEqual(await watch.all(), []);
    await context.close();
  });
}
