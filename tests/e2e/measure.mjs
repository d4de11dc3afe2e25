// Measures the page as a user meets it, in Debian's Chromium: download size, time from opening
// the page to ready (first visit, then a reload served from the Cache API), ms per query in the
// worker, and wasm memory after loading. Not a test: figures for the notes and BENCHMARKS.md.
//
//   node tests/e2e/measure.mjs [bundle-folder-relative-to-repo (default www/demo/)] [queries (default 10)]
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const root = path.resolve(import.meta.dirname, '../..');
const bundleRel = process.argv[2] || 'www/demo/';
const queries = Number(process.argv[3] || 10);
const grocery = process.env.CLIPMATCH_GROCERY || path.join(root, '../shared/data/grocery-packages');
const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const bundle = JSON.parse(readFileSync(path.join(root, bundleRel, 'bundle.json'), 'utf8'));
const sizeOf = (p) => bundle.files.find((f) => f.path === p).bytes;
const pkgBytes = readdirSync(path.join(root, 'pkg')).filter((f) => f.endsWith('.wasm') || f.endsWith('.js')).reduce((s, f) => s + statSync(path.join(root, 'pkg', f)).size, 0);
const modelBytes = sizeOf(bundle.model.weights) + sizeOf(bundle.model.config) + sizeOf(bundle.model.preprocessor);
const catalogBytes = sizeOf(bundle.catalog) + sizeOf(bundle.vectors);
const thumbBytes = bundle.files.filter((f) => f.path.startsWith('thumbs/')).reduce((s, f) => s + f.bytes, 0);

const server = spawn('python3', [path.join(root, 'scripts/static_server.py'), '--port', '0', '--dir', root], { stdio: ['ignore', 'pipe', 'ignore'] });
const base = await new Promise((resolve) => server.stdout.on('data', (d) => { const m = /:(\d+)\//.exec(String(d)); if (m) resolve(`http://127.0.0.1:${m[1]}/`); }));
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const url = `${base}index.html?bundle=${encodeURIComponent(bundleRel)}`;

async function openToReady() {
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 600_000 });
  return { ms: Date.now() - t0, ready: await page.evaluate(() => window.clipmatch.ready) };
}

const first = await openToReady();
const cached = [];
for (let i = 0; i < 3; i++) cached.push(await openToReady());
const photos = readdirSync(path.join(grocery, 'photos'), { recursive: true }).filter((f) => f.endsWith('.jpg')).sort().slice(0, queries + 1);
const perQuery = [];
for (const [i, f] of photos.entries()) {
  const before = await page.evaluate(() => window.clipmatch.answers || 0);
  await page.setInputFiles('#file-input', path.join(grocery, 'photos', f));
  await page.waitForFunction((n) => (window.clipmatch.answers || 0) > n, before, { timeout: 120_000 });
  if (i > 0) perQuery.push(await page.evaluate(() => window.clipmatch.lastMs)); // the first is a warm-up
}
// What a user sees after the last query, on a desktop and on a phone.
const shots = path.join(root, 'test-output/measure');
mkdirSync(shots, { recursive: true });
await page.screenshot({ path: path.join(shots, 'desktop.png'), fullPage: true });
await page.setViewportSize({ width: 375, height: 812 });
await page.waitForTimeout(300);
await page.screenshot({ path: path.join(shots, 'phone.png'), fullPage: true });
await browser.close();
server.kill();

const mb = (n) => (n / 1e6).toFixed(1) + ' MB';
console.log(`machine: ${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(2)}; Chromium headless; bundle ${bundleRel} (weights ${bundle.model.dtype})`);
console.log(`download: model ${mb(modelBytes)}, catalog ${mb(catalogBytes)}, thumbnails ${mb(thumbBytes)}, wasm package ${mb(pkgBytes)}; total ${mb(modelBytes + catalogBytes + thumbBytes + pkgBytes)}`);
console.log(`page open to ready, first visit: ${first.ms} ms (worker: download ${first.ready.timings.downloadMs.toFixed(0)} ms, model + catalog load ${first.ready.timings.modelMs.toFixed(0)} ms)`);
console.log(`page open to ready, cached (median of ${cached.length} reloads): ${median(cached.map((c) => c.ms))} ms (from cache: ${cached.every((c) => c.ready.fromCache)}; model load ${median(cached.map((c) => c.ready.timings.modelMs)).toFixed(0)} ms)`);
console.log(`query in the worker (decode, preprocess, vision tower, rank), median of ${perQuery.length}: ${median(perQuery).toFixed(0)} ms (min ${Math.min(...perQuery).toFixed(0)}, max ${Math.max(...perQuery).toFixed(0)})`);
for (const [i, c] of cached.entries()) {
  const t = c.ready.timings;
  const p = c.ready.pageMs;
  console.log(`  reload ${i + 1}: ${c.ms} ms to ready (page: worker started at ${p.workerStarted.toFixed(0)} ms, ready at ${p.ready.toFixed(0)} ms); ${c.ready.threads} thread(s); in the worker ${t.totalMs.toFixed(0)} ms (read from cache ${t.downloadMs.toFixed(0)} ms, model + catalog load ${t.modelMs.toFixed(0)} ms)`);
}
console.log(`wasm memory after loading: ${mb(first.ready.wasmMemoryBytes)}`);
