// One engine variant of the browser benchmark, in its own Web Worker (bench.mjs drives it through
// page.mjs). Messages: {type: 'load', variant, urls} -> load figures; {type: 'run', pixels} -> one
// timed run of the vision tower on a 1x3x224x224 f32 tensor.
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

// Every call into clipmatch's wasm API is here and only here. `urls.pkg`: a package built with the
// `bench` feature (scripts/build_wasm.sh --bench), which has `embedPixelValues`.
// `lap(name)` marks the end of a loading phase: 'runtime' (wasm module compiled and started), 'model'.
async function loadOurs(urls, files, lap, threads) {
  const pkg = await import(urls.pkg);
  const wasm = await pkg.default();
  // The multi-threaded build (pkg-threads, isolated page) starts its Web Workers first.
  if (threads > 1) await pkg.initThreadPool(threads);
  lap('runtime');
  const text = (bytes) => new TextDecoder().decode(bytes);
  // With the page's own loading (www/weights.js). Any sha256 string: the benchmark loads no catalog.
  const matcher = loadMatcher(pkg.MatcherLoader, {
    config: text(files.config), preprocessor: text(files.preprocessor), weights: files.weights, sha256: 'benchmark',
  });
  lap('model');
  return {
    embed: async (pixels) => Float32Array.from(matcher.embedPixelValues(pixels)),
    memoryBytes: () => wasm.memory.buffer.byteLength,
  };
}

// onnxruntime-web, plain wasm execution provider, its files served locally.
async function loadOrt(urls, files, lap, threads) {
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
      const result = await session.run({ [input]: new ort.Tensor('float32', pixels, [1, 3, 224, 224]) });
      return Float32Array.from(result[output].data);
    },
    memoryBytes: largestMemoryBytes,
    threadsInUse: () => ort.env.wasm.numThreads,
  };
}

let engine = null;

async function load(variant, urls) {
  const files = {};
  for (const [key, url] of Object.entries(urls.files)) files[key] = await bytesOf(url);
  const laps = {};
  let last = performance.now();
  const lap = (name) => {
    const now = performance.now();
    laps[name] = now - last;
    last = now;
  };
  engine = variant.engine === 'ours'
    ? await loadOurs(urls, files, lap, variant.threads)
    : await loadOrt(urls, files, lap, variant.threads);
  return {
    runtimeMs: laps.runtime,
    loadMs: laps.model,
    memoryBytes: engine.memoryBytes(),
    threads: engine.threadsInUse ? engine.threadsInUse() : variant.threads,
    crossOriginIsolated: self.crossOriginIsolated,
  };
}

async function run(pixels) {
  const t0 = performance.now();
  const embedding = await engine.embed(pixels);
  const ms = performance.now() - t0;
  return { ms, embedding, memoryBytes: engine.memoryBytes() };
}

self.onmessage = async ({ data }) => {
  try {
    const result = data.type === 'load' ? await load(data.variant, data.urls) : await run(data.pixels);
    self.postMessage({ id: data.id, result });
  } catch (e) {
    self.postMessage({ id: data.id, error: (e && (e.stack || e.message)) || String(e) });
  }
};
