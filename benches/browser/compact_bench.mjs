// Compact codes in the browser: the 100,000-item catalog benches/compact_bench.rs writes
// (target/compact-bench/) ranked in a Web Worker in Debian's Chromium, headless, as the page's
// worker ranks it: bytes before the first answer, ms per photo from the codes alone (before the
// vectors file has arrived) and exactly (after), recall of the exact top 5 against the native
// answers.
//
//   cargo bench --bench compact_bench        # writes target/compact-bench/
//   node benches/browser/compact_bench.mjs [pkg-dir (target/bench-pkg)] [data-dir (target/compact-bench)] [runs (100)]
//
// <pkg-dir> is a package built with the `bench` feature (CompactRankBench), as
// `scripts/build_wasm.sh --bench` builds it. playwright-core comes from `npm ci --prefix tests/e2e`.
import path from 'node:path';
import { median, openWorkerSite, root } from './worker_site.mjs';

const pkg = path.resolve(process.argv[2] || path.join(root, 'target/bench-pkg'));
const data = path.resolve(process.argv[3] || path.join(root, 'target/compact-bench'));
const runs = Number(process.argv[4] || 100);
const warmup = 5;
const stats = (xs) => `median ${median(xs).toFixed(2)} ms (min ${Math.min(...xs).toFixed(2)}, max ${Math.max(...xs).toFixed(2)})`;

const site = await openWorkerSite('compact-bench-', { pkg, data });
try {
  const r = await site.run('compact_worker.js', { pkg: `${site.base}pkg/`, data: `${site.base}data/`, warmup, runs });
  if (r.error) throw new Error(r.error);
  const n = r.codesTimes.length;
  console.log(`before the first answer: ${(r.bytesFirst / 1e6).toFixed(2)} MB of catalog files (page-catalog.json.gz + compact.bin), fetched in ${r.downloadMs.toFixed(0)} ms from localhost, decompressed and read in ${r.loadMs.toFixed(0)} ms`);
  console.log(`codes alone (before the vectors): ${stats(r.codesTimes)} over ${n} photos; recall@5 of the exact top 5 ${r.recallCodes.toFixed(4)} over ${r.queries}`);
  console.log(`vectors.bin ${(r.vectorsBytes / 1e6).toFixed(1)} MB attached (checked) in ${r.attachMs.toFixed(0)} ms`);
  console.log(`exact (after the vectors): ${stats(r.exactTimes)} over ${n} photos; recall@5 ${r.recallExact.toFixed(4)}`);
} finally {
  await site.close();
}
