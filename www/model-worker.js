// The page's side of the model worker (www/worker.js): starts it, sends it one request at a time
// with a time limit, and recovers from failures. After a trap (WebAssembly.RuntimeError: out of
// memory, a bug), a crash (the worker's `error` event) or no answer within the time limit, the
// worker is replaced by a new one and, once that one is ready, the request is tried once more;
// requests made meanwhile wait in the queue, so the next photo never fails because of the last.
// Requests keep the order they were made in, even a photo whose bytes are still being read.

import { Reply, Request, isPhotoRequest, isRegionRequest, isRerankRequest, loadRequest, proceedRequest } from './messages.js';

/** How long one request (a photo, or re-ranking) may take before the worker is restarted. */
export const REQUEST_TIMEOUT_MS = 60_000;

/** What the user reads when a photo failed twice, by the kind of failure. */
function failureText(kind, timeoutMs, panic) {
  if (panic) return `the model failed on this photo twice (${panic}) and was restarted. Try another photo.`;
  if (kind === 'timeout') return `no answer within ${timeoutMs / 1000} s, twice, so the model was restarted. Try another photo.`;
  if (kind === 'crash') return 'the model stopped working on this photo twice and was restarted. Try another photo.';
  if (kind === 'memory') return 'the model ran out of memory on this photo twice and was restarted. Try another photo.';
  return 'the model failed on this photo twice (it may need more memory than this device gives the page) and was restarted. Try another photo.';
}

export class ModelWorker {
  /**
   * options: {bundleUrl, engine, maxThreads, timeoutMs,
   *           on: {plan(msg, proceed), progress, note, ready(msg, restarted), loadError(message),
   *                restarting(kind, panic), pruned}}
   * `plan` hears the download's size before it starts and calls proceed() to let it start
   * (without `plan`, it starts at once). `restarting` hears the panic's message when the wasm
   * side panicked (src/web/panic_hook.rs), else undefined.
   */
  constructor(options) {
    this.options = options;
    this.timeoutMs = options.timeoutMs || REQUEST_TIMEOUT_MS;
    this.generation = 0; // workers started so far
    this.worker = null;
    this.ready = false;
    this.queue = [];
    this.current = null; // {job, id, timer}
    this.nextId = 1;
    this.lastPhoto = null; // {message, generation}: re-ranking on a new worker ranks this again
    this.lastRegion = null; // the region of the last photo being searched (null: the whole photo)
  }

  get idle() { return !this.current && this.queue.length === 0; }

  start() {
    const { bundleUrl, engine, maxThreads } = this.options;
    this.generation++;
    this.ready = false;
    const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module' });
    worker.onmessage = ({ data }) => { if (worker === this.worker) this.onMessage(data); };
    worker.onerror = (e) => {
      e.preventDefault();
      if (worker !== this.worker) return;
      if (this.ready) this.fail('crash');
      else this.loadFailed(`the worker failed to start${e.message ? ` (${e.message})` : ''}`);
    };
    worker.postMessage(loadRequest({ bundleUrl, engine, maxThreads, thumbnails: this.generation === 1 }));
    this.worker = worker;
  }

  /**
   * Sends a request (rankRequest, rankPixelsRequest, rerankRequest, rankRegionRequest or
   * wholePhotoRequest of messages.js, with weights). Resolves with {ranking, ms}, or null when a
   * newer request of the same kind replaced it before it was sent; rejects with an Error whose
   * message is for the user. A photo's `bytes` may be a promise (a file still being read): the
   * request takes its place in the queue now, and the requests after it wait until it is sent.
   */
  request(message) {
    // An older photo, region (or re-ranking) still waiting is not worth running: its answer would be hidden.
    const replaced = (job) => isPhotoRequest(message) || isRerankRequest(job.message)
      || (isRegionRequest(message) && isRegionRequest(job.message));
    for (const job of this.queue.filter(replaced)) job.resolve(null);
    this.queue = this.queue.filter((job) => !replaced(job));
    return new Promise((resolve, reject) => {
      const job = { message, attempts: 0, resolve, reject };
      this.queue.push(job);
      if (message.bytes instanceof Promise) this.read(job);
      this.pump();
    });
  }

  /** Waits for a photo's bytes; a photo that cannot be read leaves the queue with its error. */
  read(job) {
    job.message.bytes.then(
      (bytes) => { job.message = { ...job.message, bytes }; },
      (e) => {
        this.queue = this.queue.filter((j) => j !== job);
        job.reject(new Error(`the file could not be read (${e.message || e})`));
      },
    ).finally(() => this.pump());
  }

  pump() {
    if (!this.ready || this.current || this.queue.length === 0) return;
    if (this.queue[0].message.bytes instanceof Promise) return; // its read() pumps again
    const job = this.queue.shift();
    let message = job.message;
    // A restarted worker has forgotten the last photo: rank it again with the new weights, and
    // then the region searched (the one asked for, or the one searched before).
    if ((isRerankRequest(message) || isRegionRequest(message)) && this.lastPhoto && this.lastPhoto.generation !== this.generation) {
      const region = message.type === Request.RANK_REGION ? message.region : isRerankRequest(message) ? this.lastRegion : null;
      message = { ...this.lastPhoto.message, weights: message.weights, ...(region ? { region } : {}) };
    }
    const id = this.nextId++;
    const timer = setTimeout(() => this.fail('timeout'), this.timeoutMs);
    this.current = { job, id, timer, message };
    // Copied, not transferred: a retry needs the bytes again.
    this.worker.postMessage({ ...message, id });
  }

  onMessage(msg) {
    const on = this.options.on;
    if (msg.type === Reply.PLAN) {
      const worker = this.worker;
      const proceed = () => { if (worker === this.worker) worker.postMessage(proceedRequest()); };
      if (on.plan) on.plan(msg, proceed);
      else proceed();
    } else if (msg.type === Reply.PROGRESS) on.progress(msg);
    else if (msg.type === Reply.STORAGE || msg.type === Reply.NOTE) on.note(msg.message);
    else if (msg.type === Reply.PRUNED) on.pruned?.(msg);
    else if (msg.type === Reply.READY) {
      const restarted = this.generation > 1;
      this.ready = true;
      on.ready(msg, restarted);
      this.pump();
    } else if (msg.type === Reply.LOAD_ERROR) this.loadFailed(msg.message);
    else if ((msg.type === Reply.RESULT || msg.type === Reply.ERROR) && this.current?.id === msg.id) {
      const { job, timer, message } = this.current;
      clearTimeout(timer);
      if (msg.type === Reply.ERROR && msg.fatal) { this.fail(msg.outOfMemory ? 'memory' : 'trap', msg.panic); return; }
      this.current = null;
      if (msg.type === Reply.RESULT) {
        if (isPhotoRequest(message)) {
          const { region, ...photo } = message;
          this.lastPhoto = { message: photo, generation: this.generation };
        }
        if (isPhotoRequest(message) || isRegionRequest(message)) this.lastRegion = message.region || null;
        job.resolve({ ranking: msg.ranking, ms: msg.ms });
      } else job.reject(new Error(msg.message));
      this.pump();
    }
  }

  /**
   * The worker trapped ('trap', or 'memory': out of memory), crashed or timed out: replace it,
   * and retry the request once. `panic`: the panic's message, when the wasm side panicked.
   */
  fail(kind, panic) {
    const current = this.current;
    this.current = null;
    if (current) clearTimeout(current.timer);
    this.worker.terminate();
    this.options.on.restarting(kind, panic);
    this.start();
    if (!current) return;
    const { job } = current;
    job.attempts++;
    if (job.attempts < 2) this.queue.unshift(job);
    else job.reject(new Error(failureText(kind, this.timeoutMs, panic)));
  }

  loadFailed(message) {
    this.ready = false;
    this.worker.terminate();
    const waiting = [...(this.current ? [this.current.job] : []), ...this.queue];
    if (this.current) clearTimeout(this.current.timer);
    this.current = null;
    this.queue = [];
    for (const job of waiting) job.reject(new Error(`the model could not be loaded again: ${message}`));
    this.options.on.loadError(message);
  }
}
