// Probe (issue 14): today's int8 kernel against the same product with its operands loaded
// already broadcast / widened (src/lib.rs), in headless Chromium, one shape (52 x 768 -> 3072).
// Prints mismatches against the definition and the median ms of each. Not part of the crate.
//
//   (cd benches/probes/qgemm_loads && cargo build --release --target wasm32-unknown-unknown && node run.mjs [VARIANT,...])
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from '../../browser/node_modules/playwright-core/index.mjs';

const wasm = path.join(import.meta.dirname, 'target/wasm32-unknown-unknown/release/qgemm_loads_probe.wasm');
const bytes = [...readFileSync(wasm)];
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless=new', '--no-sandbox'] });
const page = await browser.newPage();
const variants = (process.argv[2] || 'plain,splat,splat16,scratch16,splat_u2').split(',');
const r = await page.evaluate(([b, variants]) => {
  const i = new WebAssembly.Instance(new WebAssembly.Module(new Uint8Array(b)), {}).exports;
  i.setup(12345);
  const bad = {};
  variants.forEach((f) => { i[f](); bad[f] = i.mismatches(); });
  const t = Object.fromEntries(variants.map((f) => [f, []]));
  for (let run = 0; run < 21; run++) {
    for (const f of variants) {
      const s = performance.now();
      for (let k = 0; k < 10; k++) i[f]();
      t[f].push((performance.now() - s) / 10);
    }
  }
  const median = (a) => a.sort((x, y) => x - y)[a.length >> 1];
  return { bad, ms: Object.fromEntries(variants.map((f) => [f, median(t[f])])) };
}, [bytes, variants]);
const macs = 50 * 768 * 3072;
console.log(`Chromium ${browser.version()}`);
for (const f of variants) {
  console.log(`${f.padEnd(10)} ${r.ms[f].toFixed(2)} ms  ${(macs / r.ms[f] / 1e6).toFixed(1)} G multiply-adds/s  ${(r.ms.plain / r.ms[f]).toFixed(2)}x plain  mismatches ${r.bad[f]}`);
}
await browser.close();
