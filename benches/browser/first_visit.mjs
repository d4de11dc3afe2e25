// First visit on a phone's network: bytes and seconds from opening the page to the first answer,
// ours (the app, index.html, with a bundle of the grocery catalog) beside transformers.js (its web
// bundle, the onnxruntime-web runtime it loads and the model's 8-bit image tower, in a page that
// embeds the same photo), each in a fresh headless Chromium context (empty cache, no service
// worker) behind the same shaped link (phone_link.mjs: default 10 Mbit/s each way, 150 ms round
// trip). The photo is chosen as soon as the page's file input exists; the first answer is ours's
// first ranked list / the peer's image embedding. Not a test: it prints figures for BENCHMARKS.md.
//
//   (cd benches/browser && npm ci)
//   cargo build --release && scripts/build_wasm.sh       (target/release/clipmatch, pkg/)
//   python3 benches/export_onnx.py --model MODEL --out MODEL/onnx
//   node benches/browser/first_visit.mjs --model MODEL [--dtype int8] [--runs 3] [--rate 10] [--rtt 150]
//
// --model DIR: a model folder (Hugging Face CLIP, or open_clip's MobileCLIP); --onnx DIR (default
// MODEL/onnx: vision_int8.onnx, the peer's q8 model); --dtype: our bundle's (default int8);
// --photo FILE (default: a grocery photo); --tokenizer FILE (for folders without one; default
// ../shared/data/clip-vit-base-patch32/tokenizer.json). transformers.js's package is taken from
// npm once (`npm pack @huggingface/transformers@VERSION`) into target/first-visit/.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { phoneLink, serveSite } from './phone_link.mjs';

const here = import.meta.dirname;
const root = path.resolve(here, '../..');
const { chromium } = createRequire(path.join(here, 'package.json'))('playwright-core');
/** transformers.js as its users get it (npm's newest 4.x when this was written). */
const TRANSFORMERS_JS = '4.3.2';

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string' },
    onnx: { type: 'string' },
    dtype: { type: 'string', default: 'int8' },
    runs: { type: 'string', default: '3' },
    rate: { type: 'string', default: '10' },
    rtt: { type: 'string', default: '150' },
    photo: { type: 'string' },
    tokenizer: { type: 'string', default: path.join(root, '../shared/data/clip-vit-base-patch32/tokenizer.json') },
    exe: { type: 'string', default: path.join(root, 'target/release/clipmatch') },
  },
});
if (!opt.model) throw new Error('--model DIR is required');
const modelDir = path.resolve(opt.model);
const onnxDir = path.resolve(opt.onnx ?? path.join(modelDir, 'onnx'));
const link = { rateMbit: Number(opt.rate), rttMs: Number(opt.rtt) };
const grocery = path.join(root, '../shared/data/grocery-packages');
/** The first in-store photo of the grocery set (photos/GROUP/PRODUCT/*.jpg). */
function firstPhoto() {
  const photos = path.join(grocery, 'photos');
  const first = readdirSync(photos, { recursive: true }).filter((f) => /\.jpe?g$/i.test(f)).sort()[0];
  if (!first) throw new Error(`no photo under ${photos}: pass --photo FILE`);
  return path.join(photos, first);
}
const photo = path.resolve(opt.photo ?? firstPhoto());
const work = path.join(root, 'target/first-visit', path.basename(modelDir));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2; };
const mb = (bytes) => (bytes / 1e6).toFixed(2);

/** Our demo bundle: the grocery catalog (every iconic product) built and bundled with the model. */
function ourBundle() {
  const bundle = path.join(work, `bundle-${opt.dtype}`);
  if (existsSync(path.join(bundle, 'bundle.json'))) return bundle;
  const catalog = path.join(work, 'catalog');
  const env = { ...process.env, CLIPMATCH_TOKENIZER: existsSync(path.join(modelDir, 'tokenizer.json')) ? '' : opt.tokenizer };
  if (!env.CLIPMATCH_TOKENIZER) delete env.CLIPMATCH_TOKENIZER;
  if (!existsSync(path.join(catalog, 'catalog.json'))) {
    execFileSync(opt.exe, ['build', path.join(grocery, 'iconic'), '--name-from', 'folder', '--model', modelDir, '--out', catalog], { stdio: 'inherit', env });
  }
  execFileSync(opt.exe, ['bundle', '--catalog', catalog, '--model', modelDir, '--dtype', opt.dtype, '--out', bundle], { stdio: 'inherit', env });
  return bundle;
}

/** The site of the app: the repository's shipped files, with the bundle at demo/. */
function ourSite(bundle) {
  const site = mkdtempSync(path.join(os.tmpdir(), 'first-visit-ours-'));
  for (const name of ['index.html', 'www', 'pkg', 'manifest.webmanifest', 'isolation-sw.js', 'isolation-sw-off.js', 'app-files.json']) {
    symlinkSync(path.join(root, name), path.join(site, name));
  }
  symlinkSync(bundle, path.join(site, 'demo'));
  return site;
}

/** transformers.js's npm package (dist/), fetched once. */
function transformersJs() {
  const dir = path.join(root, 'target/first-visit', `transformers-${TRANSFORMERS_JS}`);
  if (!existsSync(path.join(dir, 'package/dist/transformers.web.min.js'))) {
    mkdirSync(dir, { recursive: true });
    execFileSync('npm', ['pack', `@huggingface/transformers@${TRANSFORMERS_JS}`, '--silent'], { cwd: dir, stdio: ['ignore', 'ignore', 'inherit'] });
    execFileSync('tar', ['xzf', `huggingface-transformers-${TRANSFORMERS_JS}.tgz`], { cwd: dir });
  }
  return path.join(dir, 'package/dist');
}

/** The model folder transformers.js reads: config, image processor, onnx/vision_model_quantized.onnx. */
function peerModel() {
  const dir = path.join(work, 'peer-model');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(path.join(dir, 'onnx'), { recursive: true });
  symlinkSync(path.join(onnxDir, 'vision_int8.onnx'), path.join(dir, 'onnx/vision_model_quantized.onnx'));
  const openClip = path.join(modelDir, 'open_clip_config.json');
  if (existsSync(openClip)) {
    // An open_clip folder (MobileCLIP): its preprocessing as CLIPImageProcessor settings, as the
    // transformers.js conversions of MobileCLIP describe it.
    const { preprocess_cfg: pre, model_cfg: cfg } = JSON.parse(readFileSync(openClip, 'utf8'));
    const given = pre.size ?? cfg.vision_cfg.image_size;
    const size = Array.isArray(given) ? given[0] : given;
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ model_type: 'clip' }));
    writeFileSync(path.join(dir, 'preprocessor_config.json'), JSON.stringify({
      image_processor_type: 'CLIPImageProcessor', do_convert_rgb: true, do_resize: true, size: { shortest_edge: size },
      resample: pre.interpolation === 'bicubic' ? 3 : 2, do_center_crop: true, crop_size: { height: size, width: size },
      do_rescale: true, rescale_factor: 1 / 255, do_normalize: true, image_mean: pre.mean, image_std: pre.std,
    }));
  } else {
    for (const f of ['config.json', 'preprocessor_config.json']) symlinkSync(path.join(modelDir, f), path.join(dir, f));
  }
  return dir;
}

function peerSite() {
  const site = mkdtempSync(path.join(os.tmpdir(), 'first-visit-peer-'));
  for (const f of readdirSync(path.join(here, 'first_visit_peer'))) symlinkSync(path.join(here, 'first_visit_peer', f), path.join(site, f));
  symlinkSync(path.join(transformersJs(), 'transformers.web.min.js'), path.join(site, 'transformers.web.min.js'));
  symlinkSync(path.join(here, 'node_modules/onnxruntime-web/dist'), path.join(site, 'ort'));
  symlinkSync(peerModel(), path.join(site, 'model'));
  return site;
}

/** One first visit: fresh context, photo chosen as soon as the input exists; ms and bytes to the answer. */
async function visit(browser, proxy, { url, choosable, answered }) {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => console.log(`    page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') console.log(`    console: ${m.text()}`); });
  page.on('crash', () => console.log('    the page crashed'));
  page.on('response', (r) => { if (r.status() >= 400) console.log(`    ${r.status()} ${new URL(r.url()).pathname}`); });
  const before = proxy.bytes();
  const t0 = performance.now();
  await page.goto(url);
  await page.waitForFunction(choosable, null, { timeout: 300_000, polling: 50 });
  await page.setInputFiles('#file-input', photo);
  const chosen = performance.now() - t0;
  await page.waitForFunction(answered, null, { timeout: 600_000, polling: 50 });
  const ms = performance.now() - t0;
  const after = proxy.bytes();
  await context.close();
  return { ms, chosen, down: after.down - before.down, up: after.up - before.up };
}

async function main() {
  const bundle = ourBundle();
  const sites = [
    // The photo is chosen as soon as the input exists, as for the peer: on a first visit that is
    // before the app could reload itself under its isolation service worker, so that visit stays
    // on one thread and searches the photo (the next visit has threads).
    { name: 'ours', dir: ourSite(bundle), csp: root, url: 'index.html?bundle=demo/',
      choosable: () => document.querySelector('clipmatch-search')?.shadowRoot?.querySelector('#file-input'),
      answered: () => document.querySelector('clipmatch-search')?.shadowRoot?.querySelector('#result-list li') },
    { name: `transformers.js ${TRANSFORMERS_JS}`, dir: peerSite(), csp: null, url: 'index.html',
      choosable: () => document.querySelector('#file-input'),
      answered: () => { if (document.body.dataset.state === 'error') throw new Error(document.querySelector('#answer').textContent); return document.body.dataset.state === 'answered'; } },
  ];
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  console.log(`first visit, ${link.rateMbit} Mbit/s each way, ${link.rttMs} ms round trip; model ${path.basename(modelDir)}, our bundle ${opt.dtype}; photo ${path.basename(photo)}`);
  console.log(`chromium ${browser.version()}; ${os.cpus()[0].model}, ${os.cpus().length} cores; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  const figures = [];
  try {
    for (const site of sites) {
      const server = await serveSite(site.dir, { csp: site.csp });
      const proxy = await phoneLink(server.port, link);
      const runs = [];
      for (let i = 0; i < Number(opt.runs); i++) {
        const r = await visit(browser, proxy, { ...site, url: `http://127.0.0.1:${proxy.port}/${site.url}` });
        console.log(`  ${site.name} run ${i + 1}: ${(r.ms / 1000).toFixed(2)} s to the first answer (photo chosen at ${(r.chosen / 1000).toFixed(2)} s), ${mb(r.down)} MB down, ${mb(r.up)} MB up`);
        runs.push(r);
      }
      proxy.close();
      server.close();
      figures.push({ name: site.name, s: median(runs.map((r) => r.ms)) / 1000, down: median(runs.map((r) => r.down)) });
    }
  } finally {
    await browser.close();
  }
  console.log('\nmedians:');
  for (const f of figures) console.log(`  ${f.name.padEnd(24)} ${f.s.toFixed(2)} s, ${mb(f.down)} MB`);
  const [ours, peer] = figures;
  console.log(`  ratio ours / peer: ${(ours.s / peer.s).toFixed(2)}x time, ${(ours.down / peer.down).toFixed(2)}x bytes`);
}

await main();
