// The model lives here, off the page's thread: loading and ranking never freeze the page.
import { openCache, fetchFile } from './loader.js';

let matcher = null;
const WEIGHTS_SLICE = 4 << 20; // bytes of the weights file copied into wasm at a time
const MAX_THREADS = 4; // the vision tower's products gain little past this on phones and laptops
let wasm = null;
let MatcherLoader = null;
let threads = 1;

const post = (msg, transfer) => self.postMessage(msg, transfer || []);
const errorText = (e) => (e && e.message) || String(e);

const bundleJsonUrl = (bundleUrl) => new URL('bundle.json', bundleUrl).href;

/** bundle.json from the network (always revalidated), or offline the copy kept at the last visit. */
async function loadBundleJson(bundleUrl) {
  const url = bundleJsonUrl(bundleUrl);
  let response = null;
  try {
    response = await fetch(url, { cache: 'no-cache' });
  } catch (networkError) {
    const { cache } = await openCache();
    const kept = cache && (await cache.match(url));
    if (kept) return kept.json();
    throw new Error(`cannot load ${url}: ${errorText(networkError)}`);
  }
  if (!response.ok) throw new Error(`cannot load ${url}: HTTP ${response.status}. Build the app with the README's main command first.`);
  return response.json();
}

/**
 * The wasm package: the multi-threaded build (pkg/threads/) where the page is cross-origin
 * isolated (SharedArrayBuffer) and the device has several cores, else the single-threaded one.
 * A threaded build that fails to start falls back to one thread, saying why.
 */
async function startWasm() {
  const wanted = self.crossOriginIsolated ? Math.min(navigator.hardwareConcurrency || 1, MAX_THREADS) : 1;
  if (wanted > 1) {
    try {
      const pkg = await import('../pkg/threads/clipmatch.js');
      const instance = await pkg.default();
      await pkg.initThreadPool(wanted);
      return { pkg, instance, threads: wanted };
    } catch (e) {
      post({ type: 'note', message: `Running on one thread: the multi-threaded build did not start (${errorText(e)}).` });
    }
  }
  const pkg = await import('../pkg/clipmatch.js');
  return { pkg, instance: await pkg.default(), threads: 1 };
}

async function load(bundleUrl) {
  const t0 = performance.now();
  const started = await startWasm();
  wasm = started.instance;
  MatcherLoader = started.pkg.MatcherLoader;
  threads = started.threads;
  const bundle = await loadBundleJson(bundleUrl);
  if (bundle.format !== 'clipmatch-bundle' || bundle.version !== 1) throw new Error('bundle.json is not a clipmatch bundle of version 1');
  const entry = (path) => {
    const e = bundle.files.find((f) => f.path === path);
    if (!e) throw new Error(`bundle.json does not list ${path}`);
    return e;
  };
  const groups = {
    model: [bundle.model.config, bundle.model.preprocessor, bundle.model.weights].map(entry),
    catalog: [bundle.catalog, bundle.vectors].map(entry),
  };
  const { cache, reason } = await openCache();
  if (cache) await cache.put(bundleJsonUrl(bundleUrl), new Response(JSON.stringify(bundle))).catch(() => {});
  if (!cache) post({ type: 'storage', message: `Files will not be kept for the next visit: ${reason}.` });
  let storageWarned = !cache;
  const files = {};
  const verified = {};
  let fromCache = true;
  for (const [group, entries] of Object.entries(groups)) {
    const total = entries.reduce((s, e) => s + e.bytes, 0);
    let done = 0;
    for (const e of entries) {
      const got = await fetchFile(bundleUrl, e, cache, (received) => post({ type: 'progress', group, received: done + received, total }));
      done += e.bytes;
      files[e.path] = got.bytes;
      verified[e.path] = got.verified;
      fromCache = fromCache && got.fromCache;
      if (got.storageError && !storageWarned) {
        storageWarned = true;
        post({ type: 'storage', message: `Storage is full or refused, so files will be downloaded again next time (${got.storageError}). The app works from memory.` });
      }
    }
  }
  const text = (path) => new TextDecoder().decode(files[path]);
  const tDownloaded = performance.now();
  // The weights go into wasm a slice at a time: its memory holds the model, never the file too.
  // The loader verified their sha256 where SubtleCrypto exists; elsewhere the wasm side hashes.
  const weights = files[bundle.model.weights];
  const verifiedSha = verified[bundle.model.weights] ? entry(bundle.model.weights).sha256 : undefined;
  const loader = new MatcherLoader(text(bundle.model.config), text(bundle.model.preprocessor), !verifiedSha);
  try {
    for (let at = 0; at < weights.length; at += WEIGHTS_SLICE) loader.push(weights.subarray(at, at + WEIGHTS_SLICE));
  } catch (e) {
    loader.free();
    throw e;
  }
  matcher = loader.finish(verifiedSha);
  delete files[bundle.model.weights];
  const summary = matcher.loadCatalog(files[bundle.catalog], files[bundle.vectors]);
  const tReady = performance.now();
  post({
    type: 'ready',
    summary,
    fromCache,
    thumbnails: bundle.files.filter((f) => f.path.startsWith('thumbs/')),
    timings: { downloadMs: tDownloaded - t0, modelMs: tReady - tDownloaded, totalMs: tReady - t0 },
    wasmMemoryBytes: wasm.memory.buffer.byteLength,
    threads,
  });
}

self.onmessage = async ({ data: msg }) => {
  try {
    if (msg.type === 'load') {
      await load(msg.bundleUrl);
      return;
    }
    if (!matcher) throw new Error('the model is not loaded yet');
    const t0 = performance.now();
    const w = msg.weights || {};
    let ranking;
    if (msg.type === 'rank') ranking = matcher.rankImage(new Uint8Array(msg.bytes), w.text, w.image, w.topK);
    else if (msg.type === 'rankPixels') ranking = matcher.rankPixels(new Uint8Array(msg.rgba), msg.width, msg.height, w.text, w.image, w.topK);
    else if (msg.type === 'rerank') ranking = matcher.rerank(w.text, w.image, w.topK);
    else throw new Error(`unknown request ${msg.type}`);
    post({ type: 'result', id: msg.id, ranking, ms: performance.now() - t0, rerank: msg.type === 'rerank' });
  } catch (e) {
    // A trap (e.g. out of memory) leaves the wasm instance unusable: the page restarts the worker.
    const fatal = e instanceof WebAssembly.RuntimeError;
    post({ type: msg.type === 'load' ? 'load-error' : 'error', id: msg.id, message: errorText(e), fatal });
  }
};
