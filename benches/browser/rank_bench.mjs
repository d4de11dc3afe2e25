// Ranking benchmark in the browser: a synthetic catalog (random unit vectors, seeded, stored as
// i8 and as f32 exactly as `clipmatch build` stores them) ranked top 5 in a Web Worker in
// Debian's Chromium, headless. Prints the median of the timed runs after a warm-up.
//
//   node benches/browser/rank_bench.mjs [pkg-dir] [items (100000)] [runs (30)] [dim (512)]
//
// <pkg-dir> is a package built with the `bench` feature (RankBench); the default,
// target/bench-pkg/, is what `scripts/build_wasm.sh --bench` builds. playwright-core comes from
// `npm ci --prefix tests/e2e`.
import path from 'node:path';
import { median, openWorkerSite, root } from './worker_site.mjs';

const pkg = path.resolve(process.argv[2] || path.join(root, 'target/bench-pkg'));
const items = Number(process.argv[3] || 100_000);
const runs = Number(process.argv[4] || 30);
const dim = Number(process.argv[5] || 512);
const warmup = 5;

const site = await openWorkerSite('rank-bench-', { pkg });
try {
  for (const dtype of ['i8', 'f32']) {
    // A fresh worker (and wasm memory) per storage type.
    const r = await site.run('rank_worker.js', { pkg: `${site.base}pkg/`, items, dim, dtype, warmup, runs });
    if (r.error) throw new Error(`${dtype}: ${r.error}`);
    console.log(`${dtype.padStart(3)}: ${items} items x 2 x ${dim} dims (${(r.vectorBytes / 1e6).toFixed(1)} MB of vectors, built in ${(r.buildMs / 1e3).toFixed(1)} s): `
      + `rank top 5 in the worker, median ${median(r.times).toFixed(2)} ms over ${runs} runs after ${warmup} warm-up `
      + `(min ${Math.min(...r.times).toFixed(2)}, max ${Math.max(...r.times).toFixed(2)})`);
  }
} finally {
  await site.close();
}
