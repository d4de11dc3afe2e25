// A model worker for the thread tests (tests/e2e/threads.mjs; never shipped): one of the page's
// wasm packages (under pkg/ or pkg/candle/, as the app picks it for the bundle's family), the
// single-threaded build or the threaded one with its pool forced to a given size (the app's worker
// chooses its own), the bundle loaded and a photo ranked as the app does. Messages:
//   {type: 'load', bundleUrl, threads (0: the single-threaded build), folder (the threaded
//    build's folder, default 'threads'), photo (bytes)} -> {memoryBytes}
//   {type: 'rank', runs} -> {ms: [one per run], memoryBytes}
import { bundleFamily, checkBundle, modelPaths } from '../../../www/bundle.js';
import { loadMatcher, packageFolder } from '../../../www/weights.js';

let matcher = null;
let wasm = null;
let photo = null;

async function bytesOf(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function load({ bundleUrl, threads, folder = 'threads', photo: bytes }) {
  const bundle = await (await fetch(new URL('bundle.json', bundleUrl))).json();
  const listed = checkBundle(bundle, bundleUrl);
  const family = packageFolder(bundleFamily(bundle));
  const pkg = await import(`../../../pkg/${family}${threads > 0 ? `${folder}/` : ''}clipmatch.js`);
  wasm = await pkg.default();
  if (threads > 0) await pkg.initThreadPool(threads);
  const files = {};
  for (const p of [...modelPaths(bundle), bundle.catalog, bundle.vectors]) files[p] = await bytesOf(new URL(p, bundleUrl));
  const text = (p) => new TextDecoder().decode(files[p]);
  matcher = loadMatcher(pkg.MatcherLoader, {
    bundle,
    config: text(bundle.model.config),
    preprocessor: bundle.model.preprocessor === undefined ? undefined : text(bundle.model.preprocessor),
    weights: files[bundle.model.weights],
    sha256: listed.get(bundle.model.weights).sha256,
  });
  matcher.loadCatalog(files[bundle.catalog], files[bundle.vectors]);
  photo = bytes;
  return { memoryBytes: wasm.memory.buffer.byteLength };
}

function rank({ runs }) {
  const ms = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    matcher.rankImage(photo);
    ms.push(performance.now() - t0);
  }
  return { ms, memoryBytes: wasm.memory.buffer.byteLength };
}

self.onmessage = async ({ data }) => {
  try {
    self.postMessage(data.type === 'load' ? await load(data) : rank(data));
  } catch (e) {
    self.postMessage({ error: (e && e.message) || String(e) });
  }
};
