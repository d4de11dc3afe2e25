// Ranking benchmark in the browser: a synthetic catalog (random unit vectors, seeded, stored as
// i8 and as f32 exactly as `clipmatch build` stores them) ranked top 5 in a Web Worker in
// Debian's Chromium, headless. Prints the median of the timed runs after a warm-up.
//
//   node benches/browser/rank_bench.mjs [pkg-dir] [items (100000)] [runs (30)] [dim (512)]
//
// <pkg-dir> is a package built with the `bench` feature (RankBench); the default,
// target/bench-pkg/, is what `scripts/build_wasm.sh --bench` builds. playwright-core comes from
// `npm ci --prefix tests/e2e`.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const here = import.meta.dirname;
const root = path.resolve(here, '../..');
const { chromium } = createRequire(path.join(root, 'tests/e2e/package.json'))('playwright-core');
const pkg = path.resolve(process.argv[2] || path.join(root, 'target/bench-pkg'));
const items = Number(process.argv[3] || 100_000);
const runs = Number(process.argv[4] || 30);
const dim = Number(process.argv[5] || 512);
const warmup = 5;
const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

// One origin for the page, its worker and the wasm package.
const site = mkdtempSync(path.join(os.tmpdir(), 'rank-bench-'));
symlinkSync(pkg, path.join(site, 'pkg'));
symlinkSync(here, path.join(site, 'bench'));
const server = spawn('python3', [path.join(root, 'scripts/static_server.py'), '--port', '0', '--dir', site], { stdio: ['ignore', 'pipe', 'ignore'] });
const base = await new Promise((resolve) => server.stdout.on('data', (d) => { const m = /:(\d+)\//.exec(String(d)); if (m) resolve(`http://127.0.0.1:${m[1]}/`); }));
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args });
try {
  const page = await browser.newPage();
  page.on('console', (m) => console.error(`[page] ${m.text()}`));
  await page.goto(`${base}bench/rank_bench.html`);
  console.log(`machine: ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${await browser.version()} headless`);
  for (const dtype of ['i8', 'f32']) {
    // A fresh worker (and wasm memory) per storage type.
    const r = await page.evaluate((o) => new Promise((resolve) => {
      const w = new Worker('rank_worker.js', { type: 'module' });
      w.onmessage = ({ data }) => { w.terminate(); resolve(data); };
      w.onerror = (e) => resolve({ error: e.message || 'worker failed to start' });
      w.postMessage(o);
    }), { pkg: `${base}pkg/`, items, dim, dtype, warmup, runs });
    if (r.error) throw new Error(`${dtype}: ${r.error}`);
    console.log(`${dtype.padStart(3)}: ${items} items x 2 x ${dim} dims (${(r.vectorBytes / 1e6).toFixed(1)} MB of vectors, built in ${(r.buildMs / 1e3).toFixed(1)} s): `
      + `rank top 5 in the worker, median ${median(r.times).toFixed(2)} ms over ${runs} runs after ${warmup} warm-up `
      + `(min ${Math.min(...r.times).toFixed(2)}, max ${Math.max(...r.times).toFixed(2)})`);
  }
} finally {
  await browser.close();
  server.kill();
  rmSync(site, { recursive: true, force: true });
}
