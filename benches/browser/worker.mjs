// One engine variant of the browser benchmark, in its own Web Worker (bench.mjs drives it through
// page.mjs). Messages: {type: 'load', variant, urls} -> load figures; {type: 'run', pixels} -> one
// timed run of the image tower on a 1x3xHxW f32 tensor; {type: 'query', photo} -> one timed query
// as the page's worker answers it (ours only: decode, preprocess, image tower, ranking).
import { checkBundle, modelPaths } from '../../www/bundle.js';
import { loadMatcher } from '../../www/weights.js';

// Every WebAssembly.Memory made in this worker, so onnxruntime-web's memory (created in JS by its
// Emscripten glue, not exported to us) can be measured like ours.
const memories = [];
WebAssembly.Memory = new Proxy(WebAssembly.Memory, {
  construct(target, args, newTarget) {
    const memory = Reflect.construct(target, args, newTarget);
    memories.push(memory);
    return memory;
  },
});
const largestMemoryBytes = () => Math.max(0, ...memories.map((m) => m.buffer.byteLength));

async function bytesOf(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

/**
 * A bundle folder's files, fetched as the page's worker (www/worker.js) fetches them and checked
 * by the page's own bundle.js: bundle.json, its listing, and every file the model and catalog need.
 */
async function fetchBundle(bundleUrl) {
  const bundle = await (await fetch(new URL('bundle.json', bundleUrl))).json();
  const listed = checkBundle(bundle, bundleUrl);
  const files = {};
  for (const p of [...modelPaths(bundle), bundle.catalog, bundle.vectors]) files[p] = await bytesOf(new URL(p, bundleUrl));
  return { bundle, listed, files };
}

// Every call into clipmatch's wasm API is here and only here. `urls.pkg`: a package built with the
// `bench` feature (scripts/build_wasm.sh --bench), which has `embedPixelValues`.
// `lap(name)` marks the end of a loading phase: 'runtime' (wasm module compiled and started), 'model'.
async function loadOurs(urls, { bundle, listed, files }, lap, threads, engine) {
  const pkg = await import(urls.pkg);
  const wasm = await pkg.default();
  // The multi-threaded build (pkg-threads, isolated page) starts its Web Workers first.
  if (threads > 1 || urls.pkg.includes('/threads/')) await pkg.initThreadPool(threads);
  lap('runtime');
  const text = (path) => new TextDecoder().decode(files[path]);
  // With the page's own loading (www/weights.js), as www/worker.js calls it: the bundle picks the
  // family and (unless `engine` is given) the engine. The sha256 is the listed one: the page
  // verifies its download with SubtleCrypto, which is not what is timed here.
  const matcher = loadMatcher(pkg.MatcherLoader, {
    bundle,
    engine,
    config: text(bundle.model.config),
    preprocessor: bundle.model.preprocessor === undefined ? undefined : text(bundle.model.preprocessor),
    weights: files[bundle.model.weights],
    sha256: listed.get(bundle.model.weights).sha256,
  });
  lap('model');
  delete files[bundle.model.weights]; // as the page does: its bytes are not kept after loading
  matcher.loadCatalog(files[bundle.catalog], files[bundle.vectors]);
  return {
    embed: async (pixels) => Float32Array.from(matcher.embedPixelValues(pixels)),
    query: async (photo) => matcher.rankImage(photo),
    memoryBytes: () => wasm.memory.buffer.byteLength,
    describe: () => ({ family: matcher.family, engine: matcher.engine, dtype: bundle.model.dtype }),
  };
}

// onnxruntime-web, plain wasm execution provider, its files served locally.
async function loadOrt(urls, files, lap, threads, shape) {
  const ort = await import(urls.ort);
  ort.env.wasm.wasmPaths = urls.ortDist;
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  ort.env.wasm.proxy = false;
  const options = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
  await ort.InferenceSession.create(files.identity, options); // starts the runtime (and its threads)
  lap('runtime');
  const session = await ort.InferenceSession.create(files.model, options);
  lap('model');
  const [input] = session.inputNames;
  const [output] = session.outputNames;
  return {
    embed: async (pixels) => {
      const result = await session.run({ [input]: new ort.Tensor('float32', pixels, [1, ...shape]) });
      return Float32Array.from(result[output].data);
    },
    memoryBytes: largestMemoryBytes,
    threadsInUse: () => ort.env.wasm.numThreads,
    describe: () => ({ engine: 'onnxruntime-web' }),
  };
}

let engine = null;

async function load(variant, urls) {
  const laps = {};
  let last = 0;
  const lap = (name) => {
    const now = performance.now();
    laps[name] = now - last;
    last = now;
  };
  if (variant.engine === 'ours') {
    const fetched = await fetchBundle(urls.bundle);
    last = performance.now();
    engine = await loadOurs(urls, fetched, lap, variant.threads, variant.ourEngine);
  } else {
    const files = {};
    for (const [key, url] of Object.entries(urls.files)) files[key] = await bytesOf(url);
    last = performance.now();
    engine = await loadOrt(urls, files, lap, variant.threads, variant.shape);
  }
  return {
    runtimeMs: laps.runtime,
    loadMs: laps.model,
    memoryBytes: engine.memoryBytes(),
    threads: engine.threadsInUse ? engine.threadsInUse() : variant.threads,
    crossOriginIsolated: self.crossOriginIsolated,
    ...engine.describe(),
  };
}

async function run(pixels) {
  const t0 = performance.now();
  const embedding = await engine.embed(pixels);
  const ms = performance.now() - t0;
  return { ms, embedding, memoryBytes: engine.memoryBytes() };
}

async function query(photo) {
  const t0 = performance.now();
  const ranking = await engine.query(photo);
  const ms = performance.now() - t0;
  return { ms, best: ranking.matches[0]?.name ?? null };
}

self.onmessage = async ({ data }) => {
  try {
    const result = data.type === 'load' ? await load(data.variant, data.urls)
      : data.type === 'query' ? await query(data.photo) : await run(data.pixels);
    self.postMessage({ id: data.id, result });
  } catch (e) {
    self.postMessage({ id: data.id, error: (e && (e.stack || e.message)) || String(e) });
  }
};
