// Loading the vision tower into wasm from the bytes of model.safetensors, a slice at a time, so
// wasm memory holds the model and never the file too. Used by the model's worker (worker.js) and
// the browser benchmark (benches/browser/worker.mjs), so both load exactly the same way.

/** Bytes of the weights file copied into wasm at a time. */
export const WEIGHTS_SLICE = 4 << 20;

/**
 * A `Matcher` from the wasm package's `MatcherLoader` class, the texts of config.json and
 * preprocessor_config.json, and the weights' bytes (a Uint8Array). `sha256`: the weights' hash as
 * the caller verified it, or undefined to have the wasm side compute it while loading (slow: for
 * pages without SubtleCrypto). The file's length is given to the loader, so a header describing
 * other data is refused before it sizes anything.
 */
export function loadMatcher(MatcherLoader, { config, preprocessor, weights, sha256 }) {
  const loader = new MatcherLoader(config, preprocessor, sha256 === undefined, weights.length);
  try {
    for (let at = 0; at < weights.length; at += WEIGHTS_SLICE) loader.push(weights.subarray(at, at + WEIGHTS_SLICE));
  } catch (e) {
    loader.free();
    throw e;
  }
  return loader.finish(sha256);
}
