// What the node-side tools (profile_node.mjs, compare_packages.mjs) share: a bench package loaded
// in node, a bundle's image tower loaded through the page's own loader (www/weights.js), and the
// fixed random pixel tensor they embed.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/// The wasm-bindgen package in `dir` (scripts/build_wasm.sh --bench wrote it), initialised. Each
/// folder is its own module instance, so two builds can run side by side.
export async function loadPackage(dir) {
  const pkg = await import(`${pathToFileURL(path.join(path.resolve(dir), 'clipmatch.js'))}?${dir}`);
  await pkg.default({ module_or_path: fs.readFileSync(path.join(dir, 'clipmatch_bg.wasm')) });
  return pkg;
}

/// The bundle in `bundleDir` (bench.mjs made it: target/bench-bundles/<model>/<dtype>/): its
/// manifest, and a function that loads its image tower into a package's Matcher.
export async function openBundle(bundleDir) {
  const { loadMatcher } = await import(pathToFileURL(path.join(root, 'www/weights.js')));
  const bundle = JSON.parse(fs.readFileSync(path.join(bundleDir, 'bundle.json'), 'utf8'));
  const read = (p) => fs.readFileSync(path.join(bundleDir, p));
  const text = (p) => (p === undefined ? undefined : read(p).toString('utf8'));
  const load = (pkg) => loadMatcher(pkg.MatcherLoader, {
    bundle,
    config: text(bundle.model.config),
    preprocessor: text(bundle.model.preprocessor),
    weights: new Uint8Array(read(bundle.model.weights)),
  });
  return { bundle, load };
}

/// One CHW image of the bundle's input size, values in [-2, 2] from a fixed seed.
export function randomPixels(bundle) {
  const size = bundle.model.preprocessing?.crop_height ?? 224;
  let seed = 1;
  return Float32Array.from({ length: 3 * size * size }, () => ((seed = (seed * 16807) % 2147483647) / 2147483647) * 4 - 2);
}
