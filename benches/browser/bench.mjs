// Browser benchmark: clipmatch's wasm build against onnxruntime-web, side by side in one headless
// Chromium run, on the same CLIP vision tower weights and the same input tensor. Not a test: it
// prints figures (for BENCHMARKS.md), ratios last.
//
//   (cd benches/browser && npm ci)
//   python3 benches/export_onnx.py --model models/clip-b32-random --out models/clip-b32-random/onnx
//   cargo run --release --example export_vision -- models/clip-b32-random int8 models/clip-b32-random/onnx/vision_int8.safetensors
//   scripts/build_wasm.sh --bench              (target/bench-pkg/ and target/bench-pkg/threads/)
//   node benches/browser/bench.mjs --model models/clip-b32-random --runs 20
//
// Options: --model DIR (repo-relative), --runs N (timed runs per variant, >= 1), --warmup N,
// --only name,name (variants by name), --photo FILE (default: the first grocery photo),
// --pkg DIR (repo-relative; default target/bench-pkg: the packages built with the `bench` feature).
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

const root = path.resolve(import.meta.dirname, '../..');
const { values: opt } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/clip-b32-random' },
    runs: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    only: { type: 'string' },
    photo: { type: 'string' },
    pkg: { type: 'string', default: 'target/bench-pkg' },
  },
});
const runs = Number(opt.runs);
const warmup = Number(opt.warmup);

// The variants, in one list: add one here (and, for a new kind of engine, an adapter in worker.mjs).
// `files` are relative to --model; `isolated` puts the variant's worker in a
// cross-origin isolated page (needed for wasm threads); `pkg` is a subfolder of --pkg.
const VARIANTS = [
  { name: 'ours f32 1t', engine: 'ours', threads: 1, isolated: false,
    files: { config: 'config.json', preprocessor: 'preprocessor_config.json', weights: 'onnx/vision_f32.safetensors' } },
  { name: 'ours f32 2t', engine: 'ours', threads: 2, isolated: true, pkg: 'threads',
    files: { config: 'config.json', preprocessor: 'preprocessor_config.json', weights: 'onnx/vision_f32.safetensors' } },
  { name: 'ours int8 2t', engine: 'ours', threads: 2, isolated: true, pkg: 'threads',
    files: { config: 'config.json', preprocessor: 'preprocessor_config.json', weights: 'onnx/vision_int8.safetensors' } },
  { name: 'ours int8 1t', engine: 'ours', threads: 1, isolated: false,
    files: { config: 'config.json', preprocessor: 'preprocessor_config.json', weights: 'onnx/vision_int8.safetensors' } },
  { name: 'ORT f32 1t', engine: 'ort', threads: 1, isolated: false,
    files: { identity: 'onnx/identity.onnx', model: 'onnx/vision_f32.onnx' } },
  { name: 'ORT int8 1t', engine: 'ort', threads: 1, isolated: false,
    files: { identity: 'onnx/identity.onnx', model: 'onnx/vision_int8.onnx' } },
  { name: 'ORT f32 2t', engine: 'ort', threads: 2, isolated: true,
    files: { identity: 'onnx/identity.onnx', model: 'onnx/vision_f32.onnx' } },
];
// Ratios printed last: ours / ORT, per pair present in the run.
const PAIRS = [
  ['ours f32 1t', 'ORT f32 1t'],
  ['ours int8 1t', 'ORT int8 1t'],
  ['ours f32 2t', 'ORT f32 2t'],
  ['ours int8 2t', 'ORT f32 2t'],
  ['ours f32 1t', 'ORT int8 1t'],
  ['ours f32 1t', 'ORT f32 2t'],
];
const MODEL_KEYS = ['weights', 'model'];
const ortVersion = JSON.parse(readFileSync(path.join(import.meta.dirname, 'node_modules/onnxruntime-web/package.json'), 'utf8')).version;

const variants = opt.only ? VARIANTS.filter((v) => opt.only.split(',').includes(v.name)) : VARIANTS;
const modelDir = path.join(root, opt.model);
for (const v of variants) {
  for (const f of Object.values(v.files)) {
    if (!existsSync(path.join(modelDir, f))) throw new Error(`${v.name}: ${path.join(opt.model, f)} is missing (see the commands at the top of this file)`);
  }
}
const pkgOf = (v) => path.posix.join(opt.pkg, v.pkg || '');
for (const v of variants.filter((v) => v.engine === 'ours')) {
  if (!existsSync(path.join(root, pkgOf(v), 'clipmatch.js'))) throw new Error(`${pkgOf(v)}/clipmatch.js is missing: scripts/build_wasm.sh --bench`);
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const dot = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0);
const cosine = (a, b) => dot(a, b) / Math.sqrt(dot(a, a) * dot(b, b));
const minus = (a, b) => a.map((x, i) => x - b[i]);
const mb = (n) => (n / 1e6).toFixed(1);

// Seeded normal noise (mulberry32 + Box-Muller), the second input and the fallback when there is no photo.
function noise(n, seed) {
  let s = seed >>> 0;
  const uniform = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform()));
}
const base64 = (f32) => Buffer.from(f32.buffer, f32.byteOffset, f32.byteLength).toString('base64');

async function serve(isolate) {
  const args = [path.join(root, 'scripts/static_server.py'), '--port', '0', '--dir', root, ...(isolate ? ['--isolate'] : [])];
  const server = spawn('python3', args, { stdio: ['ignore', 'pipe', 'ignore'] });
  const base = await new Promise((resolve) => server.stdout.on('data', (d) => { const m = /:(\d+)\//.exec(String(d)); if (m) resolve(`http://127.0.0.1:${m[1]}/`); }));
  return { server, base };
}

const loadBefore = os.loadavg();
const chromiumArgs = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: chromiumArgs });
const pages = {};
const servers = [];
async function pageFor(isolated) {
  if (pages[isolated]) return pages[isolated];
  const { server, base } = await serve(isolated);
  servers.push(server);
  const page = await (await browser.newContext()).newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') console.error(`[${isolated ? 'isolated' : 'page'}] ${m.text()}`); });
  page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
  await page.goto(`${base}benches/browser/bench.html`);
  await page.waitForSelector('body[data-state="ready"]', { state: 'attached' });
  if (isolated && !(await page.evaluate(() => window.bench.crossOriginIsolated))) throw new Error('the isolated page is not cross-origin isolated');
  pages[isolated] = { page, base };
  return pages[isolated];
}

try {
  // The input: one tensor, made once, the same bytes for every engine.
  const first = await pageFor(variants[0].isolated);
  const photosDir = path.join(root, '../shared/data/grocery-packages/photos');
  const photo = opt.photo ? path.resolve(opt.photo)
    : existsSync(photosDir) ? path.join(photosDir, readdirSync(photosDir, { recursive: true }).filter((f) => /\.jpe?g$/i.test(f)).sort()[0]) : null;
  let inputNote;
  let photoPixels;
  if (photo) {
    photoPixels = await first.page.evaluate(([bytes, pre]) => window.bench.pixelsFromPhoto(bytes, pre),
      [readFileSync(photo).toString('base64'), `${first.base}${opt.model}/preprocessor_config.json`]);
    inputNote = `photo ${path.relative(path.join(root, '..'), photo)} (browser resize + centre crop + CLIP normalisation)`;
  } else {
    photoPixels = base64(noise(3 * 224 * 224, 1));
    inputNote = 'random normal pixel values (no grocery photos found)';
  }
  const noisePixels = base64(noise(3 * 224 * 224, 2));
  for (const isolated of new Set(variants.map((v) => v.isolated))) {
    const { page } = await pageFor(isolated);
    await page.evaluate(([a, b]) => { window.bench.setInput('photo', a); window.bench.setInput('noise', b); }, [photoPixels, noisePixels]);
  }

  // Loading, one variant at a time so loads do not compete.
  const results = [];
  for (const v of variants) {
    const { page, base } = await pageFor(v.isolated);
    const urls = {
      files: Object.fromEntries(Object.entries(v.files).map(([k, f]) => [k, `${base}${opt.model}/${f}`])),
      pkg: `${base}${pkgOf(v)}/clipmatch.js`,
      ort: `${base}benches/browser/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs`,
      ortDist: `${base}benches/browser/node_modules/onnxruntime-web/dist/`,
    };
    const modelKey = MODEL_KEYS.find((k) => k in v.files);
    const load = await page.evaluate(([vv, u]) => window.bench.load(vv, u), [v, urls]);
    process.stderr.write(`loaded ${v.name}: ${load.loadMs.toFixed(0)} ms\n`);
    results.push({ ...v, page, load, modelFile: v.files[modelKey], modelBytes: statSync(path.join(modelDir, v.files[modelKey])).size, ms: [] });
  }

  // Warm-ups: `warmup` untimed photo runs per variant, the first giving the output compared, and
  // one noise run (the second input of the comparison). Then the timed runs, engines alternating
  // run by run; each round starts one variant later to spread order effects.
  const runOnce = (r, input) => r.page.evaluate(([n, i]) => window.bench.run(n, i), [r.name, input]);
  for (const r of results) {
    r.photoEmbedding = (await runOnce(r, 'photo')).embedding;
    r.noiseEmbedding = (await runOnce(r, 'noise')).embedding;
  }
  for (let w = 1; w < warmup; w++) for (const r of results) await runOnce(r, 'photo');
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < results.length; k++) {
      const r = results[(i + k) % results.length];
      const out = await runOnce(r, 'photo');
      r.ms.push(out.ms);
      r.memoryAfterRuns = out.memoryBytes;
    }
    process.stderr.write(`\rround ${i + 1}/${runs}`);
  }
  process.stderr.write('\n');
  const loadAfter = os.loadavg();
  // A second opinion on memory where the page is isolated (after the runs, so it times nothing).
  if (pages[true]) {
    process.stderr.write('measureUserAgentSpecificMemory on the isolated page...\n');
    const perVariant = await pages[true].page.evaluate(() => window.bench.measureMemory());
    for (const r of results) if (r.name in perVariant) r.uaMemoryBytes = perVariant[r.name];
  }

  const ref = results[0];
  console.log(`\nChromium ${browser.version()} headless (${chromiumArgs.join(' ')})`);
  console.log(`machine: ${os.cpus().length} cores (${os.cpus()[0].model}); load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadAfter.map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`input: ${inputNote}; 1x3x224x224 f32; ${warmup} warm-ups, ${runs} timed runs per variant, alternating`);
  console.log(`onnxruntime-web ${ortVersion}: plain wasm EP (SIMD), ort.wasm.min.mjs. wasm memory: ORT's = the WebAssembly.Memory its Emscripten glue creates (constructor hooked in the worker), ours = the wasm-bindgen module's exported memory; 'worker MB (UA memory)' = performance.measureUserAgentSpecificMemory for the worker (JS heap + wasm), isolated page only`);
  console.log('cosines and max abs diff: embeddings vs the first variant\'s; (photo - noise) = cosine of the differences between two inputs\' embeddings, which a near-constant random-weight output cannot fake\n');
  const rows = results.map((r) => ({
    variant: r.name,
    'model file': `${r.modelFile} (${mb(r.modelBytes)} MB)`,
    'runtime init ms': r.load.runtimeMs.toFixed(0),
    'model load ms': r.load.loadMs.toFixed(0),
    'wasm MB after load': mb(r.load.memoryBytes),
    'wasm MB after runs': mb(r.memoryAfterRuns),
    'worker MB (UA memory)': r.uaMemoryBytes ? mb(r.uaMemoryBytes) : '-',
    'median ms': median(r.ms).toFixed(1),
    'min ms': Math.min(...r.ms).toFixed(1),
    'max ms': Math.max(...r.ms).toFixed(1),
    [`cos vs ${ref.name}`]: cosine(r.photoEmbedding, ref.photoEmbedding).toFixed(7),
    'cos of (photo - noise)': cosine(minus(r.photoEmbedding, r.noiseEmbedding), minus(ref.photoEmbedding, ref.noiseEmbedding)).toFixed(7),
    'max abs diff': Math.max(...r.photoEmbedding.map((x, i) => Math.abs(x - ref.photoEmbedding[i]))).toExponential(1),
    threads: `${r.load.threads}${r.load.crossOriginIsolated ? ' (isolated)' : ''}`,
  }));
  const cols = Object.keys(rows[0]);
  const width = cols.map((c) => Math.max(c.length, ...rows.map((row) => String(row[c]).length)));
  const line = (cells) => `| ${cells.map((c, i) => String(c).padEnd(width[i])).join(' | ')} |`;
  console.log(line(cols));
  console.log(line(width.map((w) => '-'.repeat(w))));
  for (const row of rows) console.log(line(cols.map((c) => row[c])));

  console.log('\nratios, ours / ORT (time: > 1 means ours is slower; memory and load: > 1 means ours uses more):');
  const byName = Object.fromEntries(results.map((r) => [r.name, r]));
  for (const [a, b] of PAIRS) {
    const x = byName[a];
    const y = byName[b];
    if (!x || !y) continue;
    const ratio = (p, q) => (p / q).toFixed(2) + 'x';
    console.log(`  ${a} vs ${b}: time ${ratio(median(x.ms), median(y.ms))} (median ${median(x.ms).toFixed(0)} vs ${median(y.ms).toFixed(0)} ms), `
      + `model load ${ratio(x.load.loadMs, y.load.loadMs)}, wasm memory after load ${ratio(x.load.memoryBytes, y.load.memoryBytes)}`);
  }
} finally {
  await browser.close();
  for (const s of servers) s.kill();
}
