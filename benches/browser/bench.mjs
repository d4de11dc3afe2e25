// Browser benchmark: clipmatch's wasm build against onnxruntime-web, side by side in one headless
// Chromium run, on the same model's image tower and the same input tensor. Any supported model
// family: ours loads a bundle (made by `clipmatch bundle`) through the page's own loading code,
// onnxruntime-web the model's ONNX export. Not a test: it prints figures (for BENCHMARKS.md),
// ratios last.
//
//   (cd benches/browser && npm ci)
//   python3 benches/export_onnx.py --model MODEL --out MODEL/onnx         (or any --onnx DIR)
//   cargo build --release                      (target/release/clipmatch makes the bundles)
//   scripts/build_wasm.sh --bench              (target/bench-pkg/ and target/bench-pkg/threads/)
//   node benches/browser/bench.mjs --model models/clip-b32-random --runs 20
//   node benches/browser/bench.mjs --model /work/models-full/mobileclip2-s0 --onnx /work/models-full/mobileclip2-s0-onnx
//
// Options: --model DIR (a model folder as the hub has it), --onnx DIR (vision_f32.onnx,
// vision_int8.onnx, identity.onnx from benches/export_onnx.py; default MODEL/onnx), --bundles DIR
// (f32/, f16/, int8/, int4/ bundles of a small grocery catalog; default target/bench-bundles/<model's
// folder name>, made with --exe where missing or made from other weights; --rebuild-bundles makes
// them again), --exe FILE (default target/release/clipmatch), --engine ours|candle (our variants'
// engine; default: the bundle's family's), --runs N (timed runs per variant, >= 1), --warmup N,
// --only name,name (variants by name), --photo FILE (default: the first grocery photo),
// --pkg DIR (default target/bench-pkg: the packages built with the `bench` feature), --no-query
// (skip timing our variants' whole query), --json FILE (also write the figures there, for
// benches/models_table.py). Relative paths are from the current folder.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmdirSync, statSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { ensureBundles } from './bundles.mjs';

const root = path.resolve(import.meta.dirname, '../..');
const { values: opt } = parseArgs({
  options: {
    model: { type: 'string', default: path.join(root, 'models/clip-b32-random') },
    onnx: { type: 'string' },
    bundles: { type: 'string' },
    'rebuild-bundles': { type: 'boolean', default: false },
    exe: { type: 'string', default: path.join(root, 'target/release/clipmatch') },
    engine: { type: 'string' },
    runs: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    only: { type: 'string' },
    photo: { type: 'string' },
    pkg: { type: 'string', default: path.join(root, 'target/bench-pkg') },
    'no-query': { type: 'boolean', default: false },
    json: { type: 'string' },
  },
});
const runs = Number(opt.runs);
const warmup = Number(opt.warmup);
const modelDir = path.resolve(opt.model);
const onnxDir = path.resolve(opt.onnx ?? path.join(modelDir, 'onnx'));
const bundlesDir = path.resolve(opt.bundles ?? path.join(root, 'target/bench-bundles', path.basename(modelDir)));
const pkgDir = path.resolve(opt.pkg);

// The variants, in one list: ours at each bundle dtype (every dtype is run in f32 but int8 and
// int4, which runs as int8 once loaded, on OpenAI CLIP's own kernels) and onnxruntime-web at f32 and 8-bit, each
// on 1 thread and on 2 (`isolated`: a cross-origin isolated page, which wasm threads need). The
// first variant is the reference of the cosines.
const OUR_DTYPES = ['f32', 'f16', 'int8', 'int4'];
// int8: the weight type transformers.js ships; int8alt: the other one; q4: its 4-bit model
// (benches/export_onnx.py writes them and says which is which in variants.json).
const ORT_DTYPES = ['f32', 'int8', 'int8alt', 'q4'];
const VARIANTS = [
  ...OUR_DTYPES.flatMap((dtype) => [1, 2].map((threads) => ({ name: `ours ${dtype} ${threads}t`, engine: 'ours', dtype, threads }))),
  ...[1, 2].flatMap((threads) => ORT_DTYPES.map((dtype) => ({ name: `ORT ${dtype} ${threads}t`, engine: 'ort', dtype, threads,
    files: { identity: 'identity.onnx', model: `vision_${dtype}.onnx` } }))),
].map((v) => ({ ...v, isolated: v.threads > 1 }));
// `ours DTYPE 1tT`: the threaded package on a pool of one thread (never run unless --only names
// it): what the threaded build's code costs on one thread, apart from how a second thread is used.
VARIANTS.push(...OUR_DTYPES.map((dtype) => ({ name: `ours ${dtype} 1tT`, engine: 'ours', dtype, threads: 1, tpkg: true, isolated: true })));
// Ratios printed last, per pair present in the run: ours / ORT, then 2 threads / 1 thread.
const PAIRS = [
  ['ours f32 1t', 'ORT f32 1t'],
  ['ours int8 1t', 'ORT int8 1t'],
  ['ours f32 2t', 'ORT f32 2t'],
  ['ours int8 2t', 'ORT int8 2t'],
  ['ours f16 1t', 'ORT f32 1t'],
  ['ours f16 2t', 'ORT f32 2t'],
  ['ours f32 1t', 'ORT int8 1t'],
  ['ours int8 1t', 'ORT int8alt 1t'],
  ['ours int4 1t', 'ORT q4 1t'],
  ['ours int4 2t', 'ORT q4 2t'],
];
const THREAD_PAIRS = VARIANTS.filter((v) => v.threads === 2).map((v) => [v.name, v.name.replace(/ 2t$/, ' 1t')]);
const ortVersion = JSON.parse(readFileSync(path.join(import.meta.dirname, 'node_modules/onnxruntime-web/package.json'), 'utf8')).version;

// An export older than the int8alt / q4 files runs without them, unless --only names them.
const ortFilesThere = (v) => Object.values(v.files).every((f) => existsSync(path.join(onnxDir, f)));
const optional = (v) => (v.engine === 'ort' && ['int8alt', 'q4'].includes(v.dtype)) || v.tpkg;
const variants = opt.only
  ? VARIANTS.filter((v) => opt.only.split(',').includes(v.name))
  : VARIANTS.filter((v) => !optional(v) || (v.engine === 'ort' && ortFilesThere(v)));
if (variants.length === 0) throw new Error(`--only names no variant; the variants: ${VARIANTS.map((v) => v.name).join(', ')}`);
const variantsFile = path.join(onnxDir, 'variants.json');
const ortLabels = existsSync(variantsFile) ? JSON.parse(readFileSync(variantsFile, 'utf8')) : {};
for (const v of variants.filter((v) => v.engine === 'ort')) {
  for (const f of Object.values(v.files)) {
    if (!existsSync(path.join(onnxDir, f))) throw new Error(`${v.name}: ${path.join(onnxDir, f)} is missing (python3 benches/export_onnx.py --model ${opt.model} --out ${onnxDir})`);
  }
}
const pkgOf = (v) => (v.threads > 1 || v.tpkg ? 'threads/' : '');
for (const v of variants.filter((v) => v.engine === 'ours')) {
  if (!existsSync(path.join(pkgDir, pkgOf(v), 'clipmatch.js'))) throw new Error(`${path.join(pkgDir, pkgOf(v))}clipmatch.js is missing: scripts/build_wasm.sh --bench`);
}
// The bundles our variants load; one at least in any case, for the model's preprocessing.
const ourDtypes = [...new Set(variants.filter((v) => v.engine === 'ours').map((v) => v.dtype))];
const bundleDirs = ensureBundles({ root, modelDir, outDir: bundlesDir, dtypes: ourDtypes.length ? ourDtypes : ['f16'], exe: path.resolve(opt.exe), rebuild: opt['rebuild-bundles'] });
const bundleJson = (dtype) => JSON.parse(readFileSync(path.join(bundleDirs[dtype], 'bundle.json'), 'utf8'));
const described = bundleJson(Object.keys(bundleDirs)[0]).model;
const pre = described.preprocessing;
const shape = [3, pre.crop_height, pre.crop_width];
const inputLength = shape.reduce((a, b) => a * b);

// What the pages serve: one folder of links, so the repository, the bundles and the ONNX files
// (which may live anywhere) are all on the pages' own origin.
const served = mkdtempSync(path.join(os.tmpdir(), 'clipmatch-bench-'));
symlinkSync(root, path.join(served, 'repo'));
symlinkSync(onnxDir, path.join(served, 'onnx'));
for (const [dtype, dir] of Object.entries(bundleDirs)) symlinkSync(dir, path.join(served, `bundle-${dtype}`));
symlinkSync(pkgDir, path.join(served, 'pkg'));
const modelFileOf = (v) => {
  if (v.engine === 'ort') return { file: path.join(onnxDir, v.files.model), bytes: statSync(path.join(onnxDir, v.files.model)).size };
  const weights = bundleJson(v.dtype).model.weights;
  return { file: path.join(bundleDirs[v.dtype], weights), bytes: statSync(path.join(bundleDirs[v.dtype], weights)).size };
};

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
  const args = [path.join(root, 'scripts/static_server.py'), '--port', '0', '--dir', served, ...(isolate ? ['--isolate'] : [])];
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
  await page.goto(`${base}repo/benches/browser/bench.html`);
  await page.waitForSelector('body[data-state="ready"]', { state: 'attached' });
  if (isolated && !(await page.evaluate(() => window.bench.crossOriginIsolated))) throw new Error('the isolated page is not cross-origin isolated');
  pages[isolated] = { page, base };
  return pages[isolated];
}

const timedQueries = (r) => r.engine === 'ours' && !opt['no-query'];

try {
  // The input: one tensor, made once from the bundle's preprocessing, the same bytes for every engine.
  const first = await pageFor(variants[0].isolated);
  const photosDir = path.join(root, '../shared/data/grocery-packages/photos');
  const photo = opt.photo ? path.resolve(opt.photo)
    : existsSync(photosDir) ? path.join(photosDir, readdirSync(photosDir, { recursive: true }).filter((f) => /\.jpe?g$/i.test(f)).sort()[0])
      : path.join(root, 'tests/fixtures/images/photo.jpg');
  const photoBase64 = readFileSync(photo).toString('base64');
  const photoPixels = await first.page.evaluate(([bytes, p]) => window.bench.pixelsFromPhoto(bytes, p), [photoBase64, pre]);
  const inputNote = `photo ${path.relative(path.join(root, '..'), photo)} (browser resize (${pre.resize_mode ?? 'shortest'}) + crop + the model's normalisation)`;
  const noisePixels = base64(noise(inputLength, 2));
  for (const isolated of new Set(variants.map((v) => v.isolated))) {
    const { page } = await pageFor(isolated);
    await page.evaluate(([a, b, c]) => { window.bench.setInput('photo', a); window.bench.setInput('noise', b); window.bench.setPhoto(c); }, [photoPixels, noisePixels, photoBase64]);
  }

  // Loading, one variant at a time so loads do not compete.
  const results = [];
  for (const v of variants) {
    const { page, base } = await pageFor(v.isolated);
    const urls = {
      files: v.files && Object.fromEntries(Object.entries(v.files).map(([k, f]) => [k, `${base}onnx/${f}`])),
      bundle: v.engine === 'ours' ? `${base}bundle-${v.dtype}/` : undefined,
      pkg: `${base}pkg/${pkgOf(v)}clipmatch.js`,
      ort: `${base}repo/benches/browser/node_modules/onnxruntime-web/dist/ort.wasm.min.mjs`,
      ortDist: `${base}repo/benches/browser/node_modules/onnxruntime-web/dist/`,
    };
    const load = await page.evaluate(([vv, u]) => window.bench.load(vv, u), [{ ...v, shape, ourEngine: opt.engine }, urls]);
    process.stderr.write(`loaded ${v.name}: ${load.loadMs.toFixed(0)} ms\n`);
    results.push({ ...v, page, load, ...modelFileOf(v), ms: [], queryMs: [] });
  }

  // Warm-ups: `warmup` untimed photo runs per variant, the first giving the output compared, and
  // one noise run (the second input of the comparison); our variants also answer one query. Then
  // the timed runs, engines alternating run by run (each round starting one variant later to
  // spread order effects); our variants' whole query is timed right after their tower run.
  const runOnce = (r, input) => r.page.evaluate(([n, i]) => window.bench.run(n, i), [r.name, input]);
  const queryOnce = (r) => r.page.evaluate((n) => window.bench.query(n), r.name);
  for (const r of results) {
    r.photoEmbedding = (await runOnce(r, 'photo')).embedding;
    r.noiseEmbedding = (await runOnce(r, 'noise')).embedding;
    if (timedQueries(r)) r.best = (await queryOnce(r)).best;
  }
  for (let w = 1; w < warmup; w++) for (const r of results) await runOnce(r, 'photo');
  for (let i = 0; i < runs; i++) {
    for (let k = 0; k < results.length; k++) {
      const r = results[(i + k) % results.length];
      const out = await runOnce(r, 'photo');
      r.ms.push(out.ms);
      r.memoryAfterRuns = out.memoryBytes;
      if (timedQueries(r)) r.queryMs.push((await queryOnce(r)).ms);
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
  const ours = results.find((r) => r.engine === 'ours');
  console.log(`\nChromium ${browser.version()} headless (${chromiumArgs.join(' ')})`);
  console.log(`machine: ${os.cpus().length} cores (${os.cpus()[0].model}); load average before ${loadBefore.map((x) => x.toFixed(2)).join(' ')}, after ${loadAfter.map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`model: ${modelDir} (${described.family}; ours on ${ours ? ours.load.engine : '-'}); bundles ${bundlesDir}; ONNX ${onnxDir}`);
  console.log(`input: ${inputNote}; 1x${shape.join('x')} f32; ${warmup} warm-ups, ${runs} timed runs per variant, alternating`);
  for (const dtype of [...new Set(variants.filter((v) => v.engine === 'ort').map((v) => v.dtype))]) {
    console.log(`ORT ${dtype}: ${ortLabels[dtype] ?? '(no variants.json: an older export)'}`);
  }
  console.log(`onnxruntime-web ${ortVersion}: plain wasm EP (SIMD), ort.wasm.min.mjs. wasm memory: ORT's = the WebAssembly.Memory its Emscripten glue creates (constructor hooked in the worker), ours = the wasm-bindgen module's exported memory; 'worker MB (UA memory)' = performance.measureUserAgentSpecificMemory for the worker (JS heap + wasm), isolated page only`);
  console.log('cosines and max abs diff: embeddings vs the first variant\'s; (photo - noise) = cosine of the differences between two inputs\' embeddings, which a near-constant random-weight output cannot fake');
  console.log(`per image: the image tower on the tensor (ours: embedPixelValues; ORT: session.run); query: ours' whole query as the page's worker answers it (rankImage: decode, preprocess, image tower, rank ${ours?.best ? `; best match "${ours.best}"` : ''})\n`);
  const rows = results.map((r) => ({
    variant: r.name,
    'model file': `${path.basename(r.file)} (${mb(r.bytes)} MB)`,
    'runtime init ms': r.load.runtimeMs.toFixed(0),
    'model load ms': r.load.loadMs.toFixed(0),
    'wasm MB after load': mb(r.load.memoryBytes),
    'wasm MB after runs': mb(r.memoryAfterRuns),
    'worker MB (UA memory)': r.uaMemoryBytes ? mb(r.uaMemoryBytes) : '-',
    'median ms': median(r.ms).toFixed(1),
    'min ms': Math.min(...r.ms).toFixed(1),
    'max ms': Math.max(...r.ms).toFixed(1),
    'query median ms': r.queryMs.length ? median(r.queryMs).toFixed(1) : '-',
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

  const byName = Object.fromEntries(results.map((r) => [r.name, r]));
  const ratio = (p, q) => (p / q).toFixed(2) + 'x';
  const present = (pairs) => pairs.filter(([a, b]) => byName[a] && byName[b]).map(([a, b]) => [byName[a], byName[b]]);
  console.log('\nratios, ours / ORT (time: > 1 means ours is slower; memory and load: > 1 means ours uses more):');
  for (const [x, y] of present(PAIRS)) {
    console.log(`  ${x.name} vs ${y.name}: time ${ratio(median(x.ms), median(y.ms))} (median ${median(x.ms).toFixed(0)} vs ${median(y.ms).toFixed(0)} ms), `
      + `model load ${ratio(x.load.loadMs, y.load.loadMs)}, wasm memory after load ${ratio(x.load.memoryBytes, y.load.memoryBytes)}`);
  }
  console.log('\n2 threads / 1 thread, per image (< 1: 2 threads are faster):');
  for (const [x, y] of present(THREAD_PAIRS)) {
    console.log(`  ${x.name} / ${y.name}: ${ratio(median(x.ms), median(y.ms))} (median ${median(x.ms).toFixed(0)} vs ${median(y.ms).toFixed(0)} ms)`
      + (x.queryMs.length && y.queryMs.length ? `; query ${ratio(median(x.queryMs), median(y.queryMs))}` : ''));
  }
  if (opt.json) {
    const bundles = Object.fromEntries(Object.keys(bundleDirs).map((d) => {
      const m = bundleJson(d).model;
      return [d, { dir: bundleDirs[d], weightsBytes: statSync(path.join(bundleDirs[d], m.weights)).size }];
    }));
    const figures = (r) => ({
      name: r.name, engine: r.engine, dtype: r.dtype, threads: r.load.threads, ourEngine: r.engine === 'ours' ? r.load.engine : undefined,
      modelFile: r.file, modelBytes: r.bytes, runtimeMs: r.load.runtimeMs, loadMs: r.load.loadMs,
      memoryAfterLoadBytes: r.load.memoryBytes, memoryAfterRunsBytes: r.memoryAfterRuns, uaMemoryBytes: r.uaMemoryBytes ?? null,
      ms: r.ms, medianMs: median(r.ms), queryMs: r.queryMs, queryMedianMs: r.queryMs.length ? median(r.queryMs) : null,
      cosineToFirst: cosine(r.photoEmbedding, ref.photoEmbedding),
    });
    writeFileSync(opt.json, JSON.stringify({
      model: modelDir, family: described.family, onnx: onnxDir, onnxVariants: ortLabels, input: shape, runs, warmup, chromium: browser.version(),
      loadBefore, loadAfter, bundles, variants: results.map(figures),
    }, null, 1));
  }
} finally {
  await browser.close();
  for (const s of servers) s.kill();
  // The links first (never what they point to), then the folder.
  for (const link of readdirSync(served)) unlinkSync(path.join(served, link));
  rmdirSync(served);
}
