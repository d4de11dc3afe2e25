// Threads: on a machine with fewer cores than threads (a phone whose browser reports more cores
// than it has), the threaded package with its pool forced to 4 Web Workers on this 2-core machine
// answers a photo about as fast as the single-threaded package, and its threads sleep once the
// query is answered (on the tests' page tests/e2e/hooks/threads.html, whose workers are
// hooks/threads-worker.js, with a ViT-B/32-sized int8 bundle, CLIPMATCH_E2E_B32_BUNDLE:
// scripts/test.sh makes it from a random model of the real sizes). Where the threaded package
// cannot start (its shared memory refused, no SharedArrayBuffer, a Web Worker of its pool
// failing: made so by the tests' own page, tests/e2e/hooks/) the app runs on one thread and says
// so; a query that runs out of the threaded package's memory says so, and the next is answered.
// Registered by app.test.mjs.
//
// Also a measurement (figures for BENCHMARKS.md, not a test):
//   node tests/e2e/threads.mjs BUNDLE_DIR [rounds (default 9)] [specs (default 0,1,2,4)] [PKG_DIR]
// where a spec 0 is the single-threaded package, N the threaded one on an N-worker pool, N@DIR
// the threaded build in PKG_DIR/DIR/ instead (to compare builds side by side); PKG_DIR (default
// the repository's pkg/) is served as pkg/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { env, root, browserArgs, grocery, openTestPage, rankOnImagesOnly, assertFindsItself, upload, inputError, iconicOf } from './harness.mjs';

export const b32Bundle = process.env.CLIPMATCH_E2E_B32_BUNDLE;

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };

/** Clock ticks a second, as /proc/<pid>/stat counts CPU time. */
const TICKS = Number(process.env.CLIPMATCH_CLK_TCK || 100);

/** `/proc/<pid>/stat`'s fields after the command's name (the first is the state), or null once the process is gone. */
function statFields(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** The renderer processes (pages and their workers) of browsers this node process started. */
function ourRenderers() {
  const parent = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const fields = statFields(name);
    if (fields) parent.set(Number(name), Number(fields[1]));
  }
  const ours = (pid) => {
    for (let p = pid, hops = 0; p > 1 && hops < 16; p = parent.get(p), hops++) if (p === process.pid) return true;
    return false;
  };
  return [...parent.keys()].filter((pid) => {
    if (!ours(pid)) return false;
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--type=renderer');
    } catch {
      return false;
    }
  });
}

/** CPU seconds (user + system, all threads) the processes `pids` have used so far. */
function cpuSeconds(pids) {
  let ticks = 0;
  for (const pid of pids) {
    const fields = statFields(pid);
    if (fields) ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
  }
  return ticks / TICKS;
}

/**
 * Starts a threads-worker.js on `page` for each spec and loads `bundleUrl` and `photo` in it. A
 * spec is a thread count (0: the single-threaded package), optionally `@folder`: the threaded
 * build in pkg/folder/ instead of pkg/threads/ (to compare builds).
 */
async function startWorkers(page, bundleUrl, specs, photo) {
  return page.evaluate(async ({ bundleUrl, specs, photo }) => {
    window.workers = specs.map(() => new Worker('threads-worker.js', { type: 'module' }));
    window.ask = (i, msg) => new Promise((resolve, reject) => {
      const w = window.workers[i];
      w.onmessage = ({ data }) => (data.error ? reject(new Error(data.error)) : resolve(data));
      w.onerror = (e) => reject(new Error(e.message));
      w.postMessage(msg);
    });
    const loaded = [];
    for (const [i, spec] of specs.entries()) {
      const [threads, folder] = String(spec).split('@');
      loaded.push(await window.ask(i, { type: 'load', bundleUrl, threads: Number(threads), folder, photo: new Uint8Array(photo) }));
    }
    return loaded;
  }, { bundleUrl, specs, photo: [...photo] });
}

/** Ranks the worker's photo `runs` times on worker `i`: {ms: [of each], memoryBytes: the wasm memory after them}. */
const rank = (page, i, runs) => page.evaluate(async ({ i, runs }) => window.ask(i, { type: 'rank', runs }), { i, runs });

/**
 * Query times on the isolated server `base` for each spec (startWorkers'), one worker per spec,
 * the workers taking turns round after round (so that a change in the machine's load meets all
 * of them alike): {specs, ms: [[per round] per spec], medians, cpuMs: [the renderer's CPU time a
 * query, per spec], memoryBytes}. The page is left open.
 */
export async function timeThreads(page, base, bundleDir, specs, rounds, photo) {
  await page.goto(`${base}tests/e2e/hooks/threads.html`);
  assert.equal(await page.evaluate(() => self.crossOriginIsolated), true, 'the page is cross-origin isolated');
  const bundleUrl = `${base}${path.relative(root, bundleDir)}/`;
  const loaded = await startWorkers(page, bundleUrl, specs, photo);
  for (const i of specs.keys()) await rank(page, i, 2); // warm-up
  const ms = specs.map(() => []);
  const cpuMs = specs.map(() => 0);
  const peakBytes = loaded.map((l) => l.memoryBytes);
  const renderers = ourRenderers();
  for (let r = 0; r < rounds; r++) {
    for (const i of specs.keys()) {
      const before = cpuSeconds(renderers);
      const ranked = await rank(page, i, 1);
      cpuMs[i] += ((cpuSeconds(renderers) - before) * 1000) / rounds;
      ms[i].push(...ranked.ms);
      peakBytes[i] = Math.max(peakBytes[i], ranked.memoryBytes); // a wasm memory never shrinks: its peak
    }
  }
  return { specs, ms, medians: ms.map(median), cpuMs, memoryBytes: loaded.map((l) => l.memoryBytes), peakBytes };
}

const describe = (t) => t.specs.map((c, i) => `${String(c) === '0' ? 'single-threaded package' : `${c} thread(s)`}: median ${t.medians[i].toFixed(0)} ms, renderer CPU ${t.cpuMs[i].toFixed(0)} ms a query (${t.ms[i].map((m) => m.toFixed(0)).join(' ')})`).join('\n');

/** A grocery photo's bytes: what a shopper's photo is like. */
function aPhoto(folder) {
  const dir = path.join(folder, 'photos');
  const first = readdirSync(dir, { recursive: true }).filter((f) => f.endsWith('.jpg')).sort()[0];
  return readFileSync(path.join(dir, first));
}

export function threadTests() {
  test('4 threads on 2 cores answer a photo in at most 1.15x the single-threaded time, and sleep after it (< 1 % CPU over 10 s)',
    { skip: !b32Bundle && 'CLIPMATCH_E2E_B32_BUNDLE (a ViT-B/32-sized int8 bundle) is not set' }, async () => {
      const context = await env.browser.newContext();
      const page = await context.newPage();
      const t = await timeThreads(page, env.isolatedBase, b32Bundle, [0, 4], 7, aPhoto(grocery));
      console.log(`ViT-B/32-sized int8, ${os.cpus().length} cores, load ${os.loadavg()[0].toFixed(2)}:\n${describe(t)}`);
      assert.ok(t.medians[1] <= 1.15 * t.medians[0], `4 threads: ${t.medians[1].toFixed(0)} ms a query, the single-threaded package ${t.medians[0].toFixed(0)} ms`);
      // CPU time depends less than wall time on what else the machine runs: threads that spin
      // instead of sleeping used 2-12x the work's. Helpers that sleep after a short wait measured
      // 1.18-1.41x (2 cores, load average 2-8, 2026-12-08): the bound sits above that, below spinning.
      assert.ok(t.cpuMs[1] <= 1.6 * t.cpuMs[0], `4 threads: ${t.cpuMs[1].toFixed(0)} ms of CPU a query, the single-threaded package ${t.cpuMs[0].toFixed(0)} ms`);
      // The last query was the 4-thread worker's: now nothing runs.
      const renderers = ourRenderers();
      assert.ok(renderers.length > 0, 'the page\'s renderer process is found');
      const before = cpuSeconds(renderers);
      await new Promise((resolve) => setTimeout(resolve, 10_000));
      const used = cpuSeconds(renderers) - before;
      console.log(`renderer CPU in the 10 s after the query: ${(used * 1000).toFixed(0)} ms`);
      assert.ok(used < 0.1, `the idle page used ${(used * 1000).toFixed(0)} ms of CPU in 10 s (1 % is 100 ms)`);
      await context.close();
    });

  const threading = (page) => page.evaluate(() => {
    const { threads, threading: { pool, probeMs, why } } = window.clipmatch.ready;
    return { isolated: self.crossOriginIsolated, threads, pool, probed: probeMs?.length ?? 0, why };
  });
  const note = (page) => page.$eval('#threads-text', (e) => (e.hidden ? '' : e.textContent));

  test('on an isolated page the threaded package starts, chooses its threads by measuring, and says so only in the details', async () => {
    const { page, context, problems } = await openTestPage('', env.isolatedBase);
    const cores = Math.min(os.cpus().length, 4);
    const t = await threading(page);
    assert.deepEqual({ ...t, threads: undefined }, { isolated: true, threads: undefined, pool: cores, probed: cores, why: undefined });
    assert.ok(t.threads >= 1 && t.threads <= cores, JSON.stringify(t));
    assert.equal(await note(page), '', 'no note for the shopper');
    assert.match(await page.textContent('#threads-detail'), new RegExp(`^Search threads: ${t.threads} of ${cores} started\\. A test product at load took `));
    await rankOnImagesOnly(page);
    await assertFindsItself(page);
    assert.deepEqual(await problems(), []);
    await context.close();
  });

  for (const [fault, why, says] of [
    ['memory', 'memory', /the memory the faster search needs/],
    ['shared-memory', 'isolation', /share memory between threads/],
    ['worker', 'workers', /helper threads did not start/],
  ]) {
    test(`where the threaded package cannot start (${fault}), the app runs on one thread and says so`, async () => {
      const { page, context } = await openTestPage(`&testThreadFault=${fault}`, env.isolatedBase);
      assert.deepEqual(await threading(page), { isolated: true, threads: 1, pool: 1, probed: 0, why });
      assert.match(await note(page), new RegExp(`^Photos are searched on one thread, which is slower: .*${says.source}`));
      assert.match(await page.textContent('#threads-detail'), /^Search threads: 1: /);
      await rankOnImagesOnly(page);
      await assertFindsItself(page);
      await context.close();
    });
  }

  test('a query that runs out of the threaded package\'s memory says so, and the next photo is answered', async () => {
    const { page, context } = await openTestPage('&testFault=oom-twice', env.isolatedBase);
    assert.ok((await threading(page)).pool > 1, 'the threaded package');
    await rankOnImagesOnly(page);
    await upload(page, iconicOf('Oatly-Natural-Oatghurt'));
    assert.match(await inputError(page), /ran out of memory/);
    await assertFindsItself(page, 'Arla-Standard-Milk');
    await context.close();
  });
}

// Run directly: the measurement.
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { chromium } = await import('playwright-core');
  const [bundleDir, rounds = '9', specs = '0,1,2,4', pkgDir] = process.argv.slice(2);
  let served = root;
  if (pkgDir) {
    // The repository's files linked into a folder whose pkg/ is PKG_DIR.
    served = path.join(root, 'test-output/threads-site', path.basename(path.resolve(pkgDir)));
    rmSync(served, { recursive: true, force: true });
    mkdirSync(served, { recursive: true });
    for (const name of readdirSync(root)) if (name !== 'pkg') symlinkSync(path.join(root, name), path.join(served, name));
    symlinkSync(path.resolve(pkgDir), path.join(served, 'pkg'));
  }
  const server = spawn('python3', [path.join(root, 'scripts/static_server.py'), '--port', '0', '--dir', served, '--csp', '--isolate'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const base = await new Promise((resolve) => server.stdout.on('data', (d) => { const m = /:(\d+)\//.exec(String(d)); if (m) resolve(`http://127.0.0.1:${m[1]}/`); }));
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: browserArgs });
  try {
    const page = await browser.newPage();
    const load = os.loadavg()[0];
    const t = await timeThreads(page, base, path.resolve(bundleDir), specs.split(','), Number(rounds),
      aPhoto(process.env.CLIPMATCH_GROCERY || path.join(root, '../shared/data/grocery-packages')));
    console.log(`${bundleDir}: ${os.cpus().length} cores (${os.cpus()[0].model}), load average ${load.toFixed(2)} before, ${os.loadavg()[0].toFixed(2)} after\n${describe(t)}`);
    const mib = (list) => list.map((b) => `${(b / 2 ** 20).toFixed(0)} MiB`).join(', ');
    console.log(`wasm memory after loading: ${mib(t.memoryBytes)}; after the queries: ${mib(t.peakBytes)}`);
    const renderers = ourRenderers();
    const before = cpuSeconds(renderers);
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    console.log(`renderer CPU in the 10 s after the last query: ${((cpuSeconds(renderers) - before) * 1000).toFixed(0)} ms`);
  } finally {
    await browser.close();
    server.kill();
  }
}
