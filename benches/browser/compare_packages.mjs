// Two or more builds of the bench package side by side in one node process (V8, as Chromium runs
// the page's single-threaded package), alternated so that the machine's noise falls on each alike:
//
//   node benches/browser/compare_packages.mjs tower BUNDLE_DIR RUNS PKG_DIR...
//       the image tower of a bundle bench.mjs made (target/bench-bundles/<model>/<dtype>/) on
//       one random pixel tensor: median and minimum ms of each package, and the cosine of its
//       embedding to the first package's
//   node benches/browser/compare_packages.mjs products PKG_DIR...
//       the int8 product alone (`benchInt8Product`) on ViT-B/32's shapes: ms per shape (median of
//       seven rounds) and the sum over one pass (12 layers)
//
// A package is a folder scripts/build_wasm.sh --bench wrote (target/bench-pkg/), copied aside
// before the change being measured.
import path from 'node:path';
import { loadPackage as load, openBundle, randomPixels } from './node_tower.mjs';

const median = (a) => [...a].sort((x, y) => x - y)[a.length >> 1];

async function tower(bundleDir, runs, dirs) {
  const { bundle, load: loadTower } = await openBundle(bundleDir);
  const matchers = [];
  for (const dir of dirs) matchers.push(loadTower(await load(dir)));
  const pixels = randomPixels(bundle);
  const times = dirs.map(() => []);
  const embeddings = [];
  for (let i = 0; i < runs + 3; i++) {
    matchers.forEach((m, j) => {
      const t = performance.now();
      embeddings[j] = m.embedPixelValues(pixels);
      if (i >= 3) times[j].push(performance.now() - t);
    });
  }
  const cosine = (a, b) => {
    let [d, x, y] = [0, 0, 0];
    for (let i = 0; i < a.length; i++) [d, x, y] = [d + a[i] * b[i], x + a[i] * a[i], y + b[i] * b[i]];
    return d / Math.sqrt(x * y);
  };
  dirs.forEach((dir, j) => console.log(`${dir}: median ${median(times[j]).toFixed(1)} ms, min ${Math.min(...times[j]).toFixed(1)} ms, cosine to the first ${cosine(embeddings[0], embeddings[j]).toFixed(7)}`));
}

async function products(dirs) {
  const pkgs = [];
  for (const dir of dirs) pkgs.push(await load(dir));
  // [rows, inputs, outputs, name, times a pass]
  const shapes = [[49, 3072, 768, 'patch', 1], [50, 768, 2304, 'qkv', 12], [50, 768, 768, 'out', 11], [50, 768, 3072, 'fc1', 11], [50, 3072, 768, 'fc2', 11]];
  const ms = pkgs.map(() => shapes.map(() => []));
  for (let round = 0; round < 7; round++) {
    shapes.forEach(([m, k, n], s) => pkgs.forEach((pkg, p) => ms[p][s].push(pkg.benchInt8Product(m, k, n, 5))));
  }
  dirs.forEach((dir, p) => {
    const cells = shapes.map(([, , , name], s) => `${name} ${median(ms[p][s]).toFixed(3)}`);
    const pass = shapes.reduce((sum, [, , , , count], s) => sum + count * median(ms[p][s]), 0);
    console.log(`${dir}: ${cells.join(', ')} ms; a pass ${pass.toFixed(1)} ms`);
  });
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'tower' && args.length >= 3) await tower(path.resolve(args[0]), Number(args[1]), args.slice(2));
else if (mode === 'products' && args.length >= 1) await products(args);
else {
  console.error('usage: compare_packages.mjs tower BUNDLE_DIR RUNS PKG_DIR... | products PKG_DIR...');
  process.exit(2);
}
