// The threads the model's worker (worker.js) runs on, and starting its wasm package on them. The
// multi-threaded package (pkg/.../threads/) runs where the page may share memory between threads
// (cross-origin isolated, SharedArrayBuffer); its pool has at most MAX_THREADS Web Workers and no
// more than the cores the browser reports, and of those a short measurement at load keeps the
// fewest that are about as fast as the most: a browser may report more cores than it has (WebKit
// reports 4 on a 2-core machine), and threads past the cores only wait for each other. Where the
// threaded package cannot start (its shared memory refused, a Web Worker of its pool failing), the
// single-threaded one runs, and the shopper is told why in plain words.

/** The most threads: the vision tower's products gain little past this on phones and laptops. */
export const MAX_THREADS = 4;

/** How long the pool's Web Workers may take to start before the page gives up on them. */
export const POOL_START_MS = 20_000;

/** A thread count is kept when its measured time is within this factor of the fastest count's. */
const WITHIN_FASTEST = 1.05;

/** Runs of the test product per thread count (the fastest counts: others share the machine). */
const PROBE_RUNS = 3;

/** Why the page runs on one thread where it could run on more: for the shopper, and the details. */
const FALLBACKS = {
  isolation: 'this browser does not let the page share memory between threads here',
  memory: 'this browser did not give the page the memory the faster search needs',
  workers: "the search's helper threads did not start",
  start: 'the faster search did not start',
};

/**
 * The thread plan before anything is started: {pool, why} with `pool` the Web Workers to start
 * (1: the single-threaded package) and `why` the reason when that is 1: 'asked' (the page asked
 * for one thread, ?threads=1), 'one-core', or 'isolation' (no shared memory: a fallback).
 */
export function threadPlan(maxThreads) {
  if (maxThreads <= 1) return { pool: 1, why: 'asked' };
  const cores = navigator.hardwareConcurrency || 1;
  if (cores <= 1) return { pool: 1, why: 'one-core' };
  if (!self.crossOriginIsolated || typeof SharedArrayBuffer !== 'function') return { pool: 1, why: 'isolation' };
  return { pool: Math.min(cores, MAX_THREADS, maxThreads), why: undefined };
}

/**
 * Starts `pkg`'s pool of `threads` Web Workers (wasm-bindgen-rayon's initThreadPool); rejects
 * when one fails to start (its `error` event) or they are not all up within POOL_START_MS, and
 * then ends the ones that did start.
 */
async function startPool(pkg, threads) {
  const NativeWorker = self.Worker;
  const started = [];
  let failed;
  const failure = new Promise((_, reject) => { failed = reject; });
  // wasm-bindgen-rayon keeps its workers to itself: they are seen here as they are made.
  self.Worker = class extends NativeWorker {
    constructor(...args) {
      super(...args);
      started.push(this);
      this.addEventListener('error', (e) => failed(new Error(`a Web Worker of the pool failed to start${e.message ? ` (${e.message})` : ''}`)));
    }
  };
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the pool's Web Workers did not start within ${POOL_START_MS / 1000} s`)), POOL_START_MS);
  });
  try {
    await Promise.race([pkg.initThreadPool(threads), failure, late]);
  } catch (e) {
    for (const worker of started) worker.terminate();
    throw e;
  } finally {
    clearTimeout(timer);
    self.Worker = NativeWorker;
  }
}

/**
 * Times the package's test product (`threadProbe`) on 1 to `pool` threads and keeps the fewest
 * threads within WITHIN_FASTEST of the fastest: {threads, probeMs: [ms on 1, 2, ... threads]}.
 */
function chooseThreads(pkg, pool) {
  const probeMs = [];
  for (let n = 1; n <= pool; n++) {
    pkg.setThreads(n);
    pkg.threadProbe(); // the threads' first step of this size
    let best = Infinity;
    for (let run = 0; run < PROBE_RUNS; run++) {
      const t0 = performance.now();
      pkg.threadProbe();
      best = Math.min(best, performance.now() - t0);
    }
    probeMs.push(best);
  }
  const fastest = Math.min(...probeMs);
  const threads = probeMs.findIndex((ms) => ms <= fastest * WITHIN_FASTEST) + 1;
  pkg.setThreads(threads);
  return { threads, probeMs };
}

/**
 * The wasm package in `folder` (weights.js' packageFolder: '' or 'candle/') on the threads
 * threadPlan allows and chooseThreads keeps. `post(text)` tells the shopper when a threaded
 * start failed. Returns {pkg, instance, threading: {threads, pool, probeMs, why, detail}}:
 * `why` for one thread (threadPlan's, or 'memory', 'workers', 'start': a failed start, with the
 * error in `detail`).
 */
export async function startPackage(folder, maxThreads) {
  const plan = threadPlan(maxThreads);
  let why = plan.why;
  let detail;
  if (plan.pool > 1) {
    let stage = 'start';
    try {
      const pkg = await import(`../pkg/${folder}threads/clipmatch.js`);
      stage = 'memory'; // the glue makes the shared memory first
      const instance = await pkg.default();
      stage = 'workers';
      await startPool(pkg, plan.pool);
      const { threads, probeMs } = chooseThreads(pkg, plan.pool);
      return { pkg, instance, threading: { threads, pool: plan.pool, probeMs } };
    } catch (e) {
      why = stage === 'memory' && !(e instanceof RangeError) ? 'start' : stage;
      detail = (e && e.message) || String(e);
    }
  }
  const pkg = await import(`../pkg/${folder}clipmatch.js`);
  return { pkg, instance: await pkg.default(), threading: { threads: 1, pool: 1, why, detail } };
}

/** For the shopper, where the page runs on one thread though it could run on more; else ''. */
export function fallbackNote(threading) {
  const reason = FALLBACKS[threading.why];
  return reason ? `Photos are searched on one thread, which is slower: ${reason}.` : '';
}

/** For the Advanced details: how many threads, and why that many. */
export function threadsDetail(threading) {
  const { threads, pool, probeMs, why, detail } = threading;
  if (probeMs) {
    const times = probeMs.map((ms, i) => `${ms.toFixed(1)} ms on ${i + 1}`).join(', ');
    return `Search threads: ${threads} of ${pool} started. A test product at load took ${times}; the page keeps the fewest threads `
      + `within ${Math.round((WITHIN_FASTEST - 1) * 100)} % of the fastest.`;
  }
  if (why === 'asked') return 'Search threads: 1, as the page\'s address asks (threads=1).';
  if (why === 'one-core') return 'Search threads: 1: the browser reports one processor core.';
  const reason = FALLBACKS[why] || FALLBACKS.start;
  return `Search threads: 1: ${reason}${detail ? ` (${detail})` : ''}.`;
}
