// Loading the image tower into wasm from the bytes of its weights file, a slice at a time: OpenAI
// CLIP and SigLIP on this crate's kernels are built as the slices arrive (wasm memory holds the
// model and never the file too); candle gathers the file, never past the size bundle.json lists. Used by the
// model's worker (worker.js) and the browser benchmark (benches/browser/worker.mjs), so both load
// exactly the same way.

/** Bytes of the weights file copied into wasm at a time. */
export const WEIGHTS_SLICE = 4 << 20;

/** bundle.json's `model.layout` of a MobileCLIP FastViT tower written fused (the core's `LAYOUT`). */
export const FUSED_FASTVIT = 'fastvit-fused/1';

/**
 * The wasm package (a folder under pkg/, '' for pkg/ itself) that runs a model of `family` on
 * `engine` ('ours', 'candle' or undefined for the family's default), its weights in `layout`
 * (bundle.json's `model.layout`; undefined for a checkpoint's own): candle's engine is only in
 * pkg/candle/ (about 2.8 MB more), so a page running OpenAI CLIP, SigLIP, or a MobileCLIP FastViT
 * tower written fused, on this crate's kernels never downloads it. A MobileCLIP bundle of the older
 * layout (or MobileCLIP-B's ViT-MCi tower) goes to pkg/candle/, which runs either engine. Any
 * other engine name goes to pkg/, whose loader refuses it in one line.
 */
export function packageFolder(family, engine, layout) {
  const ours = family === 'openai-clip' || family === 'siglip' || (family === 'mobileclip' && layout === FUSED_FASTVIT);
  return !ours || engine === 'candle' ? 'candle/' : '';
}

/**
 * A `Matcher` from the wasm package's `MatcherLoader` class and:
 * - `bundle`: the parsed bundle.json (checked by bundle.js) whose model this is; the core reads the
 *   family, the weights' size and the description from it and checks the loaded model against it.
 *   Without a bundle (the benchmarks' loose files): `family` ('openai-clip' unless given).
 * - `engine`: 'ours', 'candle' or undefined (the family's default; the core refuses an engine
 *   that cannot run the family, or an unknown name);
 * - `config`, `preprocessor`: the texts of the config files (preprocessor undefined where the
 *   family has none);
 * - `weights`: the weights' bytes (a Uint8Array);
 * - `sha256`: the weights' hash as the caller verified it, or undefined to have the wasm side
 *   compute it while loading (slow: for pages without SubtleCrypto).
 */
export function loadMatcher(MatcherLoader, { bundle, family = 'openai-clip', engine, config, preprocessor, weights, sha256 }) {
  const hash = sha256 === undefined;
  const loader = bundle
    ? MatcherLoader.forBundle(JSON.stringify(bundle), engine, config, preprocessor, hash)
    : new MatcherLoader(family, engine, config, preprocessor, hash, weights.length);
  try {
    for (let at = 0; at < weights.length; at += WEIGHTS_SLICE) loader.push(weights.subarray(at, at + WEIGHTS_SLICE));
  } catch (e) {
    loader.free();
    throw e;
  }
  return loader.finish(sha256);
}
