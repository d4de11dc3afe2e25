// The model lives here, off the page's thread: loading and ranking never freeze the page.
// The page's side (www/model-worker.js) restarts this worker after a trap, a crash or a time-out.
import './report-csp.js';
import { openCache, fetchFile, isCached, pruneCache } from './loader.js';
import { bundleFamily, checkBundle, modelPaths } from './bundle.js';
import { loadMatcher, packageFolder } from './weights.js';
import { sizeText } from './sizes.js';
import { MAX_THREADS, startPackage, threadPlan } from './threads.js';
import {
  Request, checkRankingRequest, errorReply, loadErrorReply, noteReply, planReply, progressReply, prunedReply, readyReply,
  resultReply, storageReply,
} from './messages.js';

let matcher = null;
const PARALLEL_DOWNLOADS = 6; // thumbnails are many small files
const PROGRESS_EVERY_MS = 50;
let wasm = null;
let wasmPackage = null; // the package's exports: MatcherLoader, maxPhotoBytes...
let threading = { threads: 1, pool: 1 }; // threads.js' startPackage's

const post = (msg, transfer) => self.postMessage(msg, transfer || []);
const errorText = (e) => (e && e.message) || String(e);

const bundleJsonUrl = (bundleUrl) => new URL('bundle.json', bundleUrl).href;
const IMAGE_TYPES = { jpg: 'image/jpeg', jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp' };
const imageType = (path) => IMAGE_TYPES[path.split('.').pop().toLowerCase()] || 'image/jpeg';

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
 * Bytes of the wasm package startWasm will fetch (its .js and .wasm), as app-files.json lists
 * them, less what a cache already holds; 0 where the list cannot be had (offline, not built).
 */
async function packageBytes(folder, threaded) {
  try {
    const response = await fetch(new URL('../app-files.json', import.meta.url), { cache: 'no-cache' });
    if (!response.ok) return 0;
    const dir = `pkg/${folder}${threaded ? 'threads/' : ''}`;
    const files = (await response.json()).files.filter((f) => f.path === `${dir}clipmatch.js` || f.path === `${dir}clipmatch_bg.wasm`);
    let bytes = 0;
    for (const f of files) if (!(await caches.match(new URL(`../${f.path}`, import.meta.url).href))) bytes += f.bytes;
    return bytes;
  } catch {
    return 0;
  }
}

/** Runs `fn` on every item, at most `limit` at a time. */
async function eachLimited(items, limit, fn) {
  let next = 0;
  const lane = async () => { while (next < items.length) await fn(items[next++]); };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

/**
 * Downloads (or reads from the cache) every file of each group, posting the group's progress.
 * Returns {files: {path: bytes}, verified: {path: bool}, fromCache}.
 */
async function fetchGroups(bundleUrl, groups, cache) {
  const files = {};
  const verified = {};
  let fromCache = true;
  let storageWarned = !cache;
  for (const [group, entries] of Object.entries(groups)) {
    const total = entries.reduce((s, e) => s + e.bytes, 0);
    // Bytes received per file, and their running sum (kept by difference: no re-summing per chunk).
    const received = new Map();
    let sum = 0;
    let lastPost = 0;
    const progress = (e, n) => {
      sum += n - (received.get(e.path) || 0);
      received.set(e.path, n);
      const now = performance.now();
      if (now - lastPost >= PROGRESS_EVERY_MS || sum === total) {
        lastPost = now;
        post(progressReply(group, sum, total));
      }
    };
    await eachLimited(entries, PARALLEL_DOWNLOADS, async (e) => {
      const got = await fetchFile(bundleUrl, e, cache, (n) => progress(e, n));
      files[e.path] = got.bytes;
      verified[e.path] = got.verified;
      fromCache = fromCache && got.fromCache;
      if (got.storageError && !storageWarned) {
        storageWarned = true;
        post(storageReply(`Storage is full or refused, so files will be downloaded again next time (${got.storageError}). The app works from memory.`));
      }
    });
  }
  return { files, verified, fromCache };
}

async function load({ bundleUrl, engine, maxThreads = MAX_THREADS, thumbnails: wantThumbnails = true }) {
  const t0 = performance.now();
  if (new URL(bundleUrl).origin !== self.location.origin) throw new Error('the bundle is not on this site');
  const bundle = await loadBundleJson(bundleUrl);
  const listed = checkBundle(bundle, bundleUrl);
  // A big catalog with compact codes (bundle.json's `compact`): its page manifest and codes come
  // before "Ready", its vectors file after, whole and in the background; no thumbnails (100,000
  // of them cannot come first, and fetching only the results' would tell the host what the
  // photo shows).
  const compact = bundle.compact ? { manifest: listed.get(bundle.compact.manifest), codes: listed.get(bundle.compact.codes) } : null;
  const thumbnails = compact ? [] : [...listed.values()].filter((f) => f.path.startsWith('thumbs/'));
  // Every thumbnail comes with the catalog, before "Ready": what the page fetches after a photo
  // never depends on the photo.
  const groups = {
    model: modelPaths(bundle).map((p) => listed.get(p)),
    catalog: compact
      ? [compact.manifest, compact.codes]
      : [listed.get(bundle.catalog), listed.get(bundle.vectors), ...(wantThumbnails ? thumbnails : [])],
  };
  const { cache, reason } = await openCache();
  if (!cache) post(storageReply(`Files will not be kept for the next visit: ${reason}.`));
  // Before anything large is downloaded, the page hears how much (and may ask the user first).
  const entries = Object.values(groups).flat();
  const cached = await Promise.all(entries.map((e) => isCached(cache, e)));
  const sum = (list) => list.reduce((s, e) => s + e.bytes, 0);
  // Only the engine the bundle's model needs is downloaded.
  const folder = packageFolder(bundleFamily(bundle), engine, bundle.model.layout);
  const bundleBytes = sum(entries.filter((_, i) => !cached[i]));
  // The engine too on a first visit (later ones have it from the browser's caches).
  const engineBytes = bundleBytes > 0 ? await packageBytes(folder, threadPlan(maxThreads).pool > 1) : 0;
  post(planReply(bundleBytes + engineBytes, sum(entries) + engineBytes));
  await proceeded;
  const started = await startPackage(folder, maxThreads);
  wasm = started.instance;
  wasmPackage = started.pkg;
  threading = started.threading;
  const { files, verified, fromCache } = await fetchGroups(bundleUrl, groups, cache);
  const text = (path) => new TextDecoder().decode(files[path]);
  const tDownloaded = performance.now();
  // The loader verified the weights' sha256 where SubtleCrypto exists; elsewhere the wasm side hashes.
  // Their size is bundle.json's (fetchFile checked it). The core picks the tower from the bundle's family.
  matcher = loadMatcher(wasmPackage.MatcherLoader, {
    bundle,
    engine,
    config: text(bundle.model.config),
    preprocessor: bundle.model.preprocessor === undefined ? undefined : text(bundle.model.preprocessor),
    weights: files[bundle.model.weights],
    sha256: verified[bundle.model.weights] ? listed.get(bundle.model.weights).sha256 : undefined,
  });
  delete files[bundle.model.weights];
  const summary = compact
    ? matcher.loadCompactCatalog(files[compact.manifest.path], files[compact.codes.path])
    : matcher.loadCatalog(files[bundle.catalog], files[bundle.vectors]);
  const tReady = performance.now();
  post(readyReply({
    summary,
    model: { family: matcher.family, engine: matcher.engine, dtype: bundle.model.dtype },
    maxPhotoBytes: wasmPackage.maxPhotoBytes(),
    fromCache,
    thumbnails: wantThumbnails ? thumbnails.map((f) => ({ path: f.path, blob: new Blob([files[f.path]], { type: imageType(f.path) }) })) : null,
    timings: { downloadMs: tDownloaded - t0, modelMs: tReady - tDownloaded, totalMs: tReady - t0 },
    wasmMemoryBytes: wasm.memory.buffer.byteLength,
    threads: threading.threads,
    threading,
  }));
  if (compact) await fetchVectorsInBackground(bundleUrl, listed.get(bundle.vectors), cache);
  // Only now, after a successful load: the cache keeps this bundle's files and nothing else.
  if (cache) {
    await cache.put(bundleJsonUrl(bundleUrl), new Response(JSON.stringify(bundle))).catch(() => {});
    post(prunedReply(await pruneCache(cache, [...listed.values()], [bundleJsonUrl(bundleUrl)])));
  }
}

/**
 * A compact catalog's vectors file, all of it (the same request whatever the photo), while
 * photos are already ranked from the codes; then rankings are exact. Ranking requests are
 * answered between the chunks of the download.
 */
async function fetchVectorsInBackground(bundleUrl, entry, cache) {
  post(noteReply(`Results are approximate (compact codes) until the catalog's vectors (${sizeText(entry.bytes)}) have downloaded in the background.`));
  try {
    const got = await fetchFile(bundleUrl, entry, cache);
    matcher.attachVectors(got.bytes);
    post(noteReply('The catalog\'s vectors have arrived: results are exact.'));
  } catch (e) {
    post(noteReply(`Results stay approximate: the catalog's vectors could not be used (${errorText(e)}).`));
  }
}

/**
 * The message of the panic behind a trap, as the wasm side's hook recorded it
 * (src/web/panic_hook.rs), or undefined (another trap, e.g. out of memory; or no package yet).
 */
function panicMessage(e) {
  if (!(e instanceof WebAssembly.RuntimeError) || !wasmPackage) return undefined;
  try {
    return wasmPackage.takePanicMessage() ?? undefined;
  } catch {
    return undefined; // the trapped instance could not answer
  }
}

/**
 * Bytes of the allocation that failed before a trap (the wasm side records it,
 * src/web/out_of_memory.rs), or undefined (another trap; or no package yet).
 */
function failedAllocation(e) {
  if (!(e instanceof WebAssembly.RuntimeError) || !wasmPackage) return undefined;
  try {
    return wasmPackage.takeFailedAllocation() ?? undefined;
  } catch {
    return undefined;
  }
}

/** Resolved by the page's go-ahead for the download (Request.PROCEED). */
let proceed;
const proceeded = new Promise((resolve) => { proceed = resolve; });

self.onmessage = async ({ data: msg }) => {
  if (msg.type === Request.PROCEED) { proceed(); return; }
  try {
    if (msg.type === Request.LOAD) {
      await load(msg);
      return;
    }
    if (!matcher) throw new Error('the model is not loaded yet');
    checkRankingRequest(msg);
    // An allocation the core refused and handled is not this request's trap's cause.
    wasmPackage.takeFailedAllocation();
    const t0 = performance.now();
    const w = msg.weights || {};
    const rankRegion = (r) => matcher.rankRegion(r.x, r.y, r.width, r.height, w.text, w.image, w.topK);
    let ranking;
    if (msg.type === Request.RANK) ranking = matcher.rankImage(new Uint8Array(msg.bytes), w.text, w.image, w.topK);
    else if (msg.type === Request.RANK_PIXELS) ranking = matcher.rankPixels(new Uint8Array(msg.rgba), msg.width, msg.height, w.text, w.image, w.topK);
    else if (msg.type === Request.RANK_REGION) ranking = rankRegion(msg.region);
    else if (msg.type === Request.WHOLE_PHOTO) ranking = matcher.rankWholePhoto(w.text, w.image, w.topK);
    else ranking = matcher.rerank(w.text, w.image, w.topK);
    // A restarted worker is sent the last photo with the region that was being searched.
    if (msg.region && msg.type !== Request.RANK_REGION) ranking = rankRegion(msg.region);
    post(resultReply(msg.id, ranking, performance.now() - t0));
  } catch (e) {
    // A trap (e.g. out of memory, a panic) leaves the wasm instance unusable: the page restarts
    // the worker. A panic's message, or the allocation that failed, says why.
    const fatal = e instanceof WebAssembly.RuntimeError;
    const panic = panicMessage(e);
    const failed = panic ? undefined : failedAllocation(e);
    const text = panic ? `the model panicked: ${panic}`
      : failed !== undefined ? `the model ran out of memory (${sizeText(failed)} more were needed, with ${sizeText(wasm.memory.buffer.byteLength)} in use)`
        : errorText(e);
    post(msg.type === Request.LOAD ? loadErrorReply(text) : errorReply(msg.id, text, fatal, panic, failed !== undefined));
  }
};
