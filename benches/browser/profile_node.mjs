// Where the image tower's time goes, in V8 as Chromium runs it, without a browser: node loads the
// bench package (scripts/build_wasm.sh --bench, single-threaded), a bundle that bench.mjs made
// (target/bench-bundles/<model>/<dtype>/), and embeds one random pixel tensor again and again.
//
//   node --cpu-prof --cpu-prof-dir=/tmp/prof benches/browser/profile_node.mjs BUNDLE_DIR [RUNS]
//   node benches/browser/profile_node.mjs --summary /tmp/prof/*.cpuprofile
//
// The first form prints each run's milliseconds and their median; the second the functions with
// the most self time (wasm functions by their Rust names, as the package's name section has them).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPackage, openBundle, randomPixels } from './node_tower.mjs';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function summary(files) {
  const self = new Map();
  let total = 0;
  for (const file of files) {
    const prof = JSON.parse(fs.readFileSync(file, 'utf8'));
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
    const dt = prof.timeDeltas;
    prof.samples.forEach((id, i) => {
      const name = byId.get(id).callFrame.functionName || '(anonymous)';
      self.set(name, (self.get(name) || 0) + (dt[i] || 0));
      total += dt[i] || 0;
    });
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, 40);
  for (const [name, us] of rows) console.log(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${name.slice(0, 150)}`);
}

async function profile(bundleDir, runs) {
  const pkg = await loadPackage(process.env.PKG || path.join(root, 'target/bench-pkg'));
  const { bundle, load } = await openBundle(bundleDir);
  let t = performance.now();
  const matcher = load(pkg);
  console.log(`model loaded in ${(performance.now() - t).toFixed(0)} ms: ${matcher.family}, ${matcher.engine}, ${bundle.model.dtype}`);
  const pixels = randomPixels(bundle);
  const times = [];
  for (let i = 0; i < runs; i++) {
    t = performance.now();
    matcher.embedPixelValues(pixels);
    times.push(performance.now() - t);
  }
  const sorted = [...times].sort((a, b) => a - b);
  console.log(`runs (ms): ${times.map((x) => x.toFixed(0)).join(' ')}`);
  console.log(`median ${sorted[Math.floor(runs / 2)].toFixed(1)} ms, min ${sorted[0].toFixed(1)} ms`);
}

const args = process.argv.slice(2);
if (args[0] === '--summary') summary(args.slice(1));
else if (args[0]) await profile(path.resolve(args[0]), Number(args[1] || 20));
else {
  console.error('usage: profile_node.mjs BUNDLE_DIR [RUNS] | --summary FILE.cpuprofile...');
  process.exit(2);
}
