// What the worker benchmarks (rank_bench.mjs, compact_bench.mjs) share: one origin for a page,
// its Web Worker and the wasm package (a temporary folder of links served by
// scripts/static_server.py), headless Debian Chromium on it, and a job run in a fresh worker.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const here = import.meta.dirname;
export const root = path.resolve(here, '../..');
const { chromium } = createRequire(path.join(root, 'tests/e2e/package.json'))('playwright-core');
const args = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

/**
 * Serves `links` ({name: folder}; `bench` is this folder) at one origin, opens
 * bench/rank_bench.html in headless Chromium and prints the machine line. Returns {base, run, close}:
 * run(workerFile, message) runs the job in a fresh module worker and resolves with its reply.
 */
export async function openWorkerSite(prefix, links) {
  const site = mkdtempSync(path.join(os.tmpdir(), prefix));
  for (const [name, target] of Object.entries({ ...links, bench: here })) symlinkSync(target, path.join(site, name));
  const server = spawn('python3', [path.join(root, 'scripts/static_server.py'), '--port', '0', '--dir', site], { stdio: ['ignore', 'pipe', 'ignore'] });
  const base = await new Promise((resolve) => server.stdout.on('data', (d) => { const m = /:(\d+)\//.exec(String(d)); if (m) resolve(`http://127.0.0.1:${m[1]}/`); }));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args });
  const close = async () => {
    await browser.close();
    server.kill();
    rmSync(site, { recursive: true, force: true });
  };
  try {
    const page = await browser.newPage();
    page.on('console', (m) => console.error(`[page] ${m.text()}`));
    await page.goto(`${base}bench/rank_bench.html`);
    console.log(`machine: ${os.cpus().length} cores, load average ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}; ${await browser.version()} headless`);
    const run = (workerFile, message) => page.evaluate(([file, o]) => new Promise((resolve) => {
      const w = new Worker(file, { type: 'module' });
      w.onmessage = ({ data }) => { w.terminate(); resolve(data); };
      w.onerror = (e) => resolve({ error: e.message || 'worker failed to start' });
      w.postMessage(o);
    }), [workerFile, message]);
    return { base, run, close };
  } catch (e) {
    await close();
    throw e;
  }
}
