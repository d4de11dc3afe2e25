// Times the ranking of a synthetic catalog in a Web Worker, as the page's worker runs it.
// Message in: { pkg, items, dim, dtype, warmup, runs }; out: { times, vectorBytes, buildMs } or { error }.
self.onmessage = async ({ data: o }) => {
  try {
    const { default: init, RankBench } = await import(new URL('clipmatch.js', o.pkg).href);
    await init();
    const t0 = performance.now();
    const bench = new RankBench(o.items, o.dim, 1, o.dtype);
    const buildMs = performance.now() - t0;
    const times = [];
    for (let run = 0; run < o.warmup + o.runs; run++) {
      bench.newQuery(1000 + run);
      const t = performance.now();
      const ranking = bench.rank(5);
      const ms = performance.now() - t;
      if (ranking.matches.length !== Math.min(5, o.items)) throw new Error('short ranking');
      if (run >= o.warmup) times.push(ms);
    }
    self.postMessage({ times, vectorBytes: bench.vectorBytes, buildMs });
  } catch (e) {
    self.postMessage({ error: (e && e.message) || String(e) });
  }
};
