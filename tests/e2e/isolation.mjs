// The isolation service worker (issue "Hardening", item 5): scoped to the app's folder, headers
// only on the app's own files, undone by `?threads=1`, removed by the kill switch. Registered by
// app.test.mjs, which starts the suite.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { env, root, bundleDir, out, openApp, startServer, watchPage, rankOnImagesOnly, assertFindsItself, eventually, photo, results } from './harness.mjs';

const swState = (page) => page.evaluate(async () => ({
  isolated: self.crossOriginIsolated,
  controlled: Boolean(navigator.serviceWorker.controller),
  registrations: (await navigator.serviceWorker.getRegistrations()).map((r) => r.scope),
  pool: window.clipmatch?.ready?.threading?.pool, // Web Workers of the threaded package; 1: one thread
}));

/**
 * A site whose app lives in a sub-folder, /app/ (the repository's files linked in, the e2e bundle
 * at /app/bundle/), next to a shop page /shop.html; /app/notes.html is another page inside the
 * app's folder. `swCopy`: isolation-sw.js is a copy (a test may replace it), not a link.
 */
async function site(name, { swCopy = false } = {}) {
  const dir = path.join(out, name);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'app'), { recursive: true });
  for (const f of ['index.html', 'manifest.webmanifest', 'app-files.json', 'www', 'pkg']) symlinkSync(path.join(root, f), path.join(dir, 'app', f));
  symlinkSync(bundleDir, path.join(dir, 'app', 'bundle'));
  if (swCopy) copyFileSync(path.join(root, 'isolation-sw.js'), path.join(dir, 'app', 'isolation-sw.js'));
  else symlinkSync(path.join(root, 'isolation-sw.js'), path.join(dir, 'app', 'isolation-sw.js'));
  const page = '<!doctype html><meta charset="utf-8"><title>%s</title><p>%s</p>';
  writeFileSync(path.join(dir, 'shop.html'), page.replaceAll('%s', 'Another page of the shop'));
  writeFileSync(path.join(dir, 'app', 'notes.html'), page.replaceAll('%s', 'Another page in the app folder'));
  return { dir, base: await startServer({ dir }) };
}

export function isolationTests() {
  test('?threads=1 after isolation by the service worker unregisters it; on an isolated host it means one thread', async () => {
    const { page, context } = await openApp();
    const isolated = await swState(page);
    assert.equal(isolated.isolated, true);
    assert.ok(isolated.pool > 1 && isolated.registrations.length === 1, JSON.stringify(isolated));
    await page.goto(`${page.url()}&threads=1`);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    assert.deepEqual((await swState(page)).registrations, [], 'unregistered');
    await page.reload();
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    assert.deepEqual(await swState(page), { isolated: false, controlled: false, registrations: [], pool: 1 });
    await context.close();
    const byHeaders = await openApp(undefined, {}, env.isolatedBase, '&threads=1');
    assert.deepEqual(await swState(byHeaders.page), { isolated: true, controlled: false, registrations: [], pool: 1 });
    await byHeaders.context.close();
  });

  test('?threads=1 under an isolation worker that still isolates that page (an older version) reloads once without it', async () => {
    const { dir, base } = await site('site-older-sw', { swCopy: true });
    const sw = path.join(dir, 'app', 'isolation-sw.js');
    const older = readFileSync(sw, 'utf8').replace(/^.*searchParams\.get\('threads'\).*\n/m, '');
    assert.notEqual(older, readFileSync(sw, 'utf8'));
    writeFileSync(sw, older);
    const context = await env.browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}app/index.html?bundle=bundle/`);
    await eventually(page, async (p) => (await p.getAttribute('body', 'data-state')) === 'ready' && (await swState(p)).isolated);
    // Navigation requests, not load events: the reload may come before the first document's load
    // event, which then never fires.
    let navigations = 0;
    page.on('request', (r) => { if (r.isNavigationRequest() && r.frame() === page.mainFrame()) navigations++; });
    await page.goto(`${base}app/index.html?bundle=bundle/&threads=1`);
    await eventually(page, async (p) => (await p.getAttribute('body', 'data-state')) === 'ready');
    assert.deepEqual(await swState(page), { isolated: false, controlled: false, registrations: [], pool: 1 });
    assert.equal(navigations, 2, 'the ?threads=1 page, then its one reload');
    await context.close();
  });

  test('a photo chosen on a first visit before the reload that isolates the page is searched: no reload on that visit, threads on the next', async () => {
    const { base } = await site('site-photo-before-reload');
    const context = await env.browser.newContext();
    const page = await context.newPage();
    // The service worker's script held back: the page cannot reload under it until released.
    let release;
    const held = new Promise((resolve) => { release = resolve; });
    await context.route('**/isolation-sw.js', async (route) => { await held; await route.continue(); });
    let navigations = 0;
    page.on('request', (r) => { if (r.isNavigationRequest() && r.frame() === page.mainFrame()) navigations++; });
    await page.goto(`${base}app/index.html?bundle=bundle/`);
    await page.setInputFiles('#file-input', photo('Oatghurt/Oatly-Natural-Oatghurt/Oatly-Natural-Oatghurt_001.jpg'));
    release();
    await page.waitForFunction(() => (window.clipmatch.answers || 0) > 0, null, { timeout: 60_000 });
    assert.equal(navigations, 1, 'no reload: it would have lost the photo');
    assert.equal(await page.textContent('#query-caption'), 'Oatly-Natural-Oatghurt_001.jpg');
    assert.ok((await results(page)).length > 0, 'the photo was searched');
    assert.equal((await swState(page)).pool, 1, 'one thread on this visit');
    await context.unroute('**/isolation-sw.js');
    await page.reload();
    await eventually(page, async (p) => (await p.getAttribute('body', 'data-state')) === 'ready' && (await swState(p)).isolated);
    assert.ok((await swState(page)).pool > 1, 'the next visit is isolated, on threads');
    await context.close();
  });

  test('the service worker is scoped to the app\'s folder and adds COOP/COEP only to the app\'s own files', async () => {
    const { base } = await site('site-scope');
    const context = await env.browser.newContext();
    const page = await context.newPage();
    const watch = await watchPage(context, page);
    await page.goto(`${base}app/index.html?bundle=bundle/`);
    await eventually(page, async (p) => (await p.getAttribute('body', 'data-state')) === 'ready' && (await swState(p)).isolated);
    const app = await swState(page);
    assert.deepEqual(app.registrations, [`${base}app/`], 'scope: the app\'s folder');
    assert.ok(app.pool > 1, 'isolated by the service worker: threads');
    const coop = (url) => page.evaluate(async (u) => (await fetch(u)).headers.get('cross-origin-opener-policy'), url);
    assert.equal(await coop('www/app.js'), 'same-origin', 'an app file gets the headers');
    assert.equal(await coop('notes.html'), null, 'another page in the folder does not');
    assert.equal(await coop('bundle/bundle.json'), null, 'data files go to the network untouched');
    await rankOnImagesOnly(page);
    await assertFindsItself(page, 'Arla-Standard-Milk');
    assert.deepEqual(await watch.all(), []);

    const shop = await context.newPage();
    await shop.goto(`${base}shop.html`);
    const outside = await swState(shop);
    assert.deepEqual([outside.isolated, outside.controlled], [false, false], 'a page outside the app\'s folder is not under the service worker');
    const notes = await context.newPage();
    await notes.goto(`${base}app/notes.html`);
    const inFolder = await swState(notes);
    assert.equal(inFolder.controlled, true, 'a page inside the folder is under it');
    assert.equal(inFolder.isolated, false, '...but gets no COOP/COEP');
    await context.close();
  });

  test('the site\'s own service worker for the app\'s folder is neither replaced nor removed', async () => {
    const { dir, base } = await site('site-own-sw');
    writeFileSync(path.join(dir, 'shop-sw.js'), "self.addEventListener('fetch', () => {});\n");
    const context = await env.browser.newContext();
    const shop = await context.newPage();
    await shop.goto(`${base}shop.html`);
    await shop.evaluate(async () => {
      const r = await navigator.serviceWorker.register('/shop-sw.js', { scope: '/app/' });
      while (!r.active) await new Promise((resolve) => setTimeout(resolve, 50));
    });
    const scripts = (page) => page.evaluate(async () => (await navigator.serviceWorker.getRegistrations()).map((r) => `${r.scope} ${r.active?.scriptURL}`));
    const theirs = [`${base}app/ ${base}shop-sw.js`];
    const page = await context.newPage();
    const watch = await watchPage(context, page);
    await page.goto(`${base}app/index.html?bundle=bundle/`);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    assert.deepEqual(await scripts(page), theirs, 'still the site\'s own worker');
    assert.equal((await swState(page)).pool, 1, 'so the app runs on one thread');
    await page.goto(`${base}app/index.html?bundle=bundle/&threads=1`);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    assert.deepEqual(await scripts(page), theirs, '?threads=1 removes only the isolation worker');
    assert.deepEqual(watch.errors, []);
    await context.close();
  });

  test('the kill switch (isolation-sw-off.js deployed as isolation-sw.js) removes the service worker', async () => {
    const { dir, base } = await site('site-kill-switch', { swCopy: true });
    const context = await env.browser.newContext();
    const page = await context.newPage();
    const watch = await watchPage(context, page);
    const url = `${base}app/index.html?bundle=bundle/`;
    await page.goto(url);
    await eventually(page, async (p) => (await p.getAttribute('body', 'data-state')) === 'ready' && (await swState(p)).isolated);
    assert.equal((await swState(page)).registrations.length, 1);
    copyFileSync(path.join(root, 'isolation-sw-off.js'), path.join(dir, 'app', 'isolation-sw.js'));
    await page.reload(); // the browser checks the service worker's script at the visit, finds the kill switch
    await eventually(page, async (p) => {
      const s = await swState(p);
      return !s.isolated && !s.controlled && s.registrations.length === 0 && (await p.getAttribute('body', 'data-state')) === 'ready';
    });
    assert.equal((await swState(page)).pool, 1);
    await rankOnImagesOnly(page);
    await assertFindsItself(page, 'Arla-Standard-Milk');
    // A new visit (new tab, new session) registers the kill switch, which removes itself: no loop.
    const again = await context.newPage();
    await again.goto(url);
    await again.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
    await again.waitForTimeout(1000);
    assert.deepEqual(await swState(again), { isolated: false, controlled: false, registrations: [], pool: 1 });
    assert.deepEqual(await watch.all(), []);
    await context.close();
  });
}
