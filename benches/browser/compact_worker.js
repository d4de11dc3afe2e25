// Times a compact catalog's ranking in a Web Worker, as the page's worker runs it: the page's
// manifest (gzipped) and codes downloaded, photos ranked from the codes alone, then the vectors file
// downloaded and the same photos ranked exactly. Recall of the exact top 5 against the native
// bench's answers (exact-top5.json).
// Message in: { pkg, data, warmup, runs }; out: { bytesFirst, downloadMs, loadMs, codesTimes, exactTimes, recallCodes, recallExact, vectorsBytes } or { error }.
const fetchBytes = async (url) => {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return new Uint8Array(await r.arrayBuffer());
};

// The page catalog comes gzipped, as `clipmatch bundle` writes it; decompressed as www/worker.js does.
const gunzip = async (bytes) => new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'))).arrayBuffer());

self.onmessage = async ({ data: o }) => {
  try {
    const { default: init, CompactRankBench } = await import(new URL('clipmatch.js', o.pkg).href);
    await init();
    const t0 = performance.now();
    const [page, codes] = await Promise.all([fetchBytes(new URL('page-catalog.json.gz', o.data)), fetchBytes(new URL('compact.bin', o.data))]);
    const t1 = performance.now();
    const queries = new Float32Array((await fetchBytes(new URL('queries.bin', o.data))).buffer);
    const exact = await (await fetch(new URL('exact-top5.json', o.data))).json();
    const t2 = performance.now();
    const bench = new CompactRankBench(await gunzip(page), codes, queries);
    const loadMs = performance.now() - t2;
    const pass = () => {
      const times = [];
      let found = 0;
      for (let run = 0; run < exact.length; run++) {
        const t = performance.now();
        const top = bench.rank(run, 5);
        const ms = performance.now() - t;
        if (run >= o.warmup && run < o.warmup + o.runs) times.push(ms);
        found += exact[run].filter((i) => top.includes(i)).length;
      }
      return { times, recall: found / (5 * exact.length) };
    };
    const before = pass();
    const vectors = await fetchBytes(new URL('vectors.bin', o.data));
    const t3 = performance.now();
    bench.attachVectors(vectors);
    const attachMs = performance.now() - t3;
    const after = pass();
    self.postMessage({
      bytesFirst: page.length + codes.length, downloadMs: t1 - t0, loadMs, attachMs, vectorsBytes: vectors.length,
      codesTimes: before.times, exactTimes: after.times, recallCodes: before.recall, recallExact: after.recall, queries: exact.length,
    });
  } catch (e) {
    self.postMessage({ error: (e && e.message) || String(e) });
  }
};
