// Shared by the end-to-end tests: static servers of the repository (under the page's
// Content-Security-Policy, sent as a header too so workers run under it), Debian's Chromium, the
// app opened to "ready" with CSP violations and errors collected, and small helpers.
import { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { deflateSync, crc32 } from 'node:zlib';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const root = path.resolve(import.meta.dirname, '../..');
export const bundleDir = process.env.CLIPMATCH_E2E_BUNDLE;
export const grocery = process.env.CLIPMATCH_E2E_GROCERY;
/** The wasm package built with `--features test-hooks` (panicForTest), for the test page only. */
export const testPkg = process.env.CLIPMATCH_E2E_TEST_PKG;
export const tool = path.join(root, 'target/release/clipmatch');
export const out = path.join(root, 'test-output/e2e');
export const browserArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** Filled in by the suite's `before`: servers' base URLs and the browser. */
export const env = { base: '', isolatedBase: '', browser: null };
/** The running static servers, by base URL. */
const servers = new Map();

/**
 * A static server (scripts/static_server.py --csp) of `dir` (default: the repository);
 * `isolate` adds COOP/COEP. Stopped after the suite. Returns its base URL.
 */
export async function startServer({ isolate = false, dir = root } = {}) {
  const args = [path.join(root, 'scripts/static_server.py'), '--port', '0', '--dir', dir, '--csp', ...(isolate ? ['--isolate'] : [])];
  const proc = spawn('python3', args, { stdio: ['ignore', 'pipe', 'ignore'] });
  return new Promise((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      const m = /http:\/\/[\d.]+:(\d+)\//.exec(String(d));
      if (m) { const base = `http://127.0.0.1:${m[1]}/`; servers.set(base, proc); resolve(base); }
    });
    proc.on('exit', (code) => reject(new Error(`static server exited ${code}`)));
  });
}

/** Stops the server of `base` (as if the site went away), or every server. */
export function stopServers(base) {
  for (const [b, proc] of servers) {
    if (base && b !== base) continue;
    proc.kill();
    servers.delete(b);
  }
}

/** Registers the suite's set-up and tear-down (servers, browser). */
export function startSuite() {
  before(async () => {
    assert.ok(bundleDir, 'CLIPMATCH_E2E_BUNDLE names the bundle to test (scripts/test.sh sets it)');
    mkdirSync(out, { recursive: true });
    env.base = await startServer();
    env.isolatedBase = await startServer({ isolate: true });
    env.browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: browserArgs });
  });
  after(async () => {
    stopServers();
    // Chromium has been seen not to answer close() after pages with worker threads and a service
    // worker; never let that hold the suite (node exits with --test-force-exit, taking Chromium along).
    await Promise.race([env.browser?.close(), new Promise((resolve) => setTimeout(resolve, 15_000))]);
  });
}

export const bundleParam = (dir = bundleDir) => encodeURIComponent(path.relative(root, dir) + '/');
export const photo = (rel) => path.join(grocery, 'photos', rel);
export const iconicOf = (name) => {
  for (const group of readdirSync(path.join(grocery, 'iconic'))) {
    const dir = path.join(grocery, 'iconic', group, name);
    try { return path.join(dir, readdirSync(dir).find((f) => f.endsWith('_Iconic.jpg'))); } catch { /* next group */ }
  }
  throw new Error(`no iconic image for ${name}`);
};

/**
 * Collects what should never happen on the page: uncaught errors, console errors (the page's and
 * its workers'; a CSP violation and a 404 are logged there too), deprecation warnings and
 * `securitypolicyviolation` events.
 */
export async function watchPage(context, page) {
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window.cspViolations ||= []).push(`${e.violatedDirective} blocked ${e.blockedURI}`);
    });
  });
  const errors = [];
  page.on('pageerror', (e) => errors.push(`uncaught: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' || (m.type() === 'warning' && /deprecated/i.test(m.text()))) errors.push(`console ${m.type()}: ${m.text()}`);
  });
  return {
    errors,
    /** errors plus the CSP violations the page saw */
    all: async () => [...errors, ...(await page.evaluate(() => window.cspViolations || []).catch(() => []))],
  };
}

/** Opens the app on `from` with `query` appended, waits for "ready". */
export async function openApp(viewport = { width: 1280, height: 900 }, contextOptions = {}, from = env.base, query = '') {
  const context = await env.browser.newContext({ viewport, ...contextOptions });
  const page = await context.newPage();
  const watch = await watchPage(context, page);
  await page.goto(`${from}index.html?bundle=${bundleParam()}${query}`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
  return { page, context, errors: watch.errors, problems: watch.all };
}

/**
 * Opens the tests' own page (tests/e2e/hooks/: the app with the test hooks the shipped page does
 * not have, e.g. `&testFault=trap-once`) on `from` with `query` appended, waits for "ready".
 */
export async function openTestPage(query = '', from = env.base) {
  const context = await env.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const watch = await watchPage(context, page);
  await page.goto(`${from}tests/e2e/hooks/index.html?bundle=${bundleParam()}${query}`);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 120_000 });
  return { page, context, errors: watch.errors, problems: watch.all };
}

/**
 * A server of the repository whose `pkg/` is the test-hooks build (CLIPMATCH_E2E_TEST_PKG): a
 * folder of links to the repository's files, with `pkg` linking to that build. Returns its base URL.
 */
export async function startTestPkgServer() {
  assert.ok(testPkg, 'CLIPMATCH_E2E_TEST_PKG names the test-hooks build of the package (scripts/test.sh sets it)');
  const site = path.join(out, 'test-pkg-site');
  rmSync(site, { recursive: true, force: true });
  mkdirSync(site, { recursive: true });
  for (const name of readdirSync(root)) {
    if (name !== 'pkg') symlinkSync(path.join(root, name), path.join(site, name));
  }
  symlinkSync(path.resolve(testPkg), path.join(site, 'pkg'));
  return startServer({ dir: site });
}

/**
 * Holds the model's files in `context` until the returned function is called; then opens the app
 * on one thread (no reload under the isolation service worker while the model is held).
 */
export async function openWithModelHeld(context, page) {
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await context.route('**/model/**', async (route) => { await held; await route.continue(); });
  await page.goto(`${env.base}index.html?bundle=${bundleParam()}&threads=1`);
  return release;
}

/** Polls `fn(page)` until it returns true; the page may reload meanwhile. */
export async function eventually(page, fn, timeoutMs = 30_000) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try { if (await fn(page)) return; } catch { /* navigating */ }
    if (Date.now() > until) throw new Error(`not so after ${timeoutMs} ms: ${fn}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Chooses a file and waits for the worker's answer to it (a ranking or an error). */
export async function upload(page, file) {
  const before = await page.evaluate(() => window.clipmatch.answers || 0);
  await page.setInputFiles('#file-input', file);
  await page.waitForFunction((n) => (window.clipmatch.answers || 0) > n || !window.clipmatch.root.querySelector('#input-error').hidden, before, { timeout: 120_000 });
  // The element's state (the standalone page's body says the same).
  await page.waitForSelector('clipmatch-search[data-state="ready"]', { timeout: 120_000 });
}

/** The page's results against the native tool's: the same products in the same order, scores within `tolerance`. */
export function assertSameRanking(page, native, what, tolerance) {
  assert.deepEqual(page.map((x) => x.id), native.map((x) => x.id), `${what}: same products in the same order`);
  for (let i = 0; i < native.length; i++) assert.ok(Math.abs(page[i].score - native[i].score) <= tolerance, `${what} ${native[i].id}: page ${page[i].score}, native ${native[i].score}`);
}

export const results = (page) => page.$$eval('#result-list li', (lis) => lis.map((li) => ({ id: li.dataset.id, score: Number(li.dataset.score), name: li.querySelector('.name').textContent })));
export const inputError = (page) => page.$eval('#input-error', (e) => (e.hidden ? '' : e.textContent));

/** Image-only weights (text 0, image 1): with the tiny random model only image identity is safe. */
export async function rankOnImagesOnly(page) {
  await page.click('#advanced summary');
  await page.fill('#weight-text', '0');
  await page.fill('#weight-image', '1');
  await page.dispatchEvent('#weight-text', 'input');
}

/** Uploads a product's own catalog photo and checks that product ranks first (image-only weights). */
export async function assertFindsItself(page, product = 'Oatly-Natural-Oatghurt') {
  await upload(page, iconicOf(product));
  assert.equal(await inputError(page), '', 'no error shown');
  const r = await results(page);
  assert.equal(r[0]?.id, product.toLowerCase(), `top result ${JSON.stringify(r[0])}`);
  assert.ok(Math.abs(r[0].score - 1) < 1e-3, `self-similarity ${r[0].score}`);
}

/**
 * A grey 8-bit PNG of width x height (valid: signature, IHDR, IDAT, IEND with CRCs), mid-grey or
 * of `pixel(x, y)`'s values; `level`: zlib's (0 stores the pixels: a file as large as they are).
 */
export function png(width, height, { pixel = () => 0x80, level } = {}) {
  const chunk = (type, data) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 0; // 8-bit greyscale
  const rows = Buffer.alloc((width + 1) * height);
  for (let y = 0; y < height; y++) {
    rows[y * (width + 1)] = 0; // filter byte: none
    for (let x = 0; x < width; x++) rows[y * (width + 1) + 1 + x] = pixel(x, y);
  }
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows, { level })), chunk('IEND', Buffer.alloc(0))]);
}
