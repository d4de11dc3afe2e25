// Probe (issue 14): is relaxed SIMD's i32x4.relaxed_dot_i8x16_i7x16_add faster than SIMD128's
// i32x4.dot_i16x8 for our 12-bit x 8-bit products? Both kernels of src/lib.rs on one shape, in
// headless Chromium; prints whether their integers agree (with each other and the definition) and
// the median ms of each. Not part of the crate or its tests.
//
//   (cd benches/probes/relaxed_simd && RUSTFLAGS="-C target-feature=+simd128,+relaxed-simd" \
//      cargo build --release --target wasm32-unknown-unknown && node run.mjs)
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from '../../browser/node_modules/playwright-core/index.mjs';

const wasm = path.join(import.meta.dirname, 'target/wasm32-unknown-unknown/release/relaxed_simd_probe.wasm');
const bytes = [...readFileSync(wasm)];
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless=new', '--no-sandbox'] });
const page = await browser.newPage();
const r = await page.evaluate((b) => {
  const i = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(b)), {}).exports;
  i.setup(12345);
  i.plain();
  i.relaxed();
  const checks = { relaxedVsPlain: i.mismatches(), plainVsDefinition: i.reference_mismatches() };
  const t = { plain: [], relaxed: [] };
  for (let run = 0; run < 15; run++) {
    for (const f of ['plain', 'relaxed']) {
      const s = performance.now();
      i[f]();
      t[f].push(performance.now() - s);
    }
  }
  const median = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  return { checks, plainMs: median(t.plain), relaxedMs: median(t.relaxed) };
}, bytes);
const macs = 52 * 768 * 3072;
console.log(`Chromium ${browser.version()}; mismatched outputs: relaxed vs plain ${r.checks.relaxedVsPlain}, plain vs definition ${r.checks.plainVsDefinition}`);
console.log(`plain (i32x4.dot_i16x8): ${r.plainMs.toFixed(1)} ms, ${(macs / r.plainMs / 1e6).toFixed(1)} G multiply-adds/s`);
console.log(`relaxed (two 6-bit halves): ${r.relaxedMs.toFixed(1)} ms, ${(macs / r.relaxedMs / 1e6).toFixed(1)} G multiply-adds/s; relaxed / plain ${(r.relaxedMs / r.plainMs).toFixed(2)}x`);
await browser.close();
