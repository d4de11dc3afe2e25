// The messages between the page (app.js, through model-worker.js) and the model's worker
// (worker.js): every type name, the constructors that make them and the check the worker runs on
// what it receives. No other file writes a message type as a string.

/** Requests, page -> worker. */
export const Request = Object.freeze({
  LOAD: 'load',
  RANK: 'rank', // an encoded photo
  RANK_PIXELS: 'rankPixels', // a camera frame's RGBA pixels
  RERANK: 'rerank', // the last photo (or its region) again, with other weights
  RANK_REGION: 'rankRegion', // a region of the last photo, without decoding it again
  WHOLE_PHOTO: 'wholePhoto', // the whole last photo again (its region forgotten)
  PROCEED: 'proceed', // the go-ahead for the download a `plan` announced
});

/** Replies and notices, worker -> page. */
export const Reply = Object.freeze({
  PLAN: 'plan',
  PROGRESS: 'progress',
  NOTE: 'note',
  STORAGE: 'storage',
  READY: 'ready',
  LOAD_ERROR: 'load-error',
  PRUNED: 'pruned',
  RESULT: 'result',
  ERROR: 'error',
});

// Page -> worker. `weights` ({text, image, topK}, any may be undefined: the catalog's) are added by
// the page when it sends a ranking request; model-worker.js adds the request's `id`.

/** Starts the worker: the bundle, the engine asked for (`?engine=`: 'ours', 'candle', or
 * undefined for the family's default), the threads it may use, and whether it sends the
 * thumbnails. */
export const loadRequest = ({ bundleUrl, engine, maxThreads, thumbnails }) =>
  ({ type: Request.LOAD, bundleUrl, engine, maxThreads, thumbnails });
/** `bytes`: an ArrayBuffer of an encoded photo (the page may give model-worker.js a promise of
 * one: it sends the request once it is read). A photo request may also carry a `region`
 * (model-worker.js adds it when a restarted worker must rank the photo and then that region). */
export const rankRequest = (bytes) => ({ type: Request.RANK, bytes });
/** `rgba`: an ArrayBuffer of width x height x 4 bytes. */
export const rankPixelsRequest = (rgba, width, height) => ({ type: Request.RANK_PIXELS, rgba, width, height });
export const rerankRequest = () => ({ type: Request.RERANK });
/** `region`: {x, y, width, height} in whole pixels of the last photo, upright (crop.js). */
export const rankRegionRequest = (region) => ({ type: Request.RANK_REGION, region });
export const wholePhotoRequest = () => ({ type: Request.WHOLE_PHOTO });
export const proceedRequest = () => ({ type: Request.PROCEED });

/** Whether a request ranks a new photo (rather than the last one again). */
export const isPhotoRequest = (message) => message.type === Request.RANK || message.type === Request.RANK_PIXELS;
export const isRerankRequest = (message) => message.type === Request.RERANK;
/** Whether a request picks what of the last photo is searched: a region, or the whole photo. */
export const isRegionRequest = (message) => message.type === Request.RANK_REGION || message.type === Request.WHOLE_PHOTO;

/**
 * The worker's check of a ranking request before it touches wasm: throws an Error for an unknown
 * type or a photo request without its bytes. What the bytes hold (and a frame's size) the wasm
 * side checks.
 */
export function checkRankingRequest(message) {
  const { type } = message;
  if (type === Request.RERANK || type === Request.WHOLE_PHOTO) return;
  if (type !== Request.RANK && type !== Request.RANK_PIXELS && type !== Request.RANK_REGION) throw new Error(`unknown request ${type}`);
  if (message.region !== undefined || type === Request.RANK_REGION) checkRegion(message.region);
  if (type === Request.RANK_REGION) return;
  const bytes = type === Request.RANK ? message.bytes : message.rgba;
  if (!(bytes instanceof ArrayBuffer)) throw new Error(`a ${type} request without its bytes`);
}

/** A region is four numbers; whether they are whole pixels inside the photo the wasm side checks. */
function checkRegion(region) {
  const fields = ['x', 'y', 'width', 'height'];
  if (!region || fields.some((f) => typeof region[f] !== 'number')) throw new Error('a region must give x, y, width and height as numbers');
}

// Worker -> page.

/** Before any download: the bytes the model, the catalog and the wasm package need that this
 * device does not keep yet (`toDownload`), of `total`. The worker waits for a proceedRequest. */
export const planReply = (toDownload, total) => ({ type: Reply.PLAN, toDownload, total });
export const progressReply = (group, received, total) => ({ type: Reply.PROGRESS, group, received, total });
/** Something the user should know that stops nothing (e.g. running on one thread). */
export const noteReply = (message) => ({ type: Reply.NOTE, message });
/** Storage refused or full: files will be downloaded again next time. */
export const storageReply = (message) => ({ type: Reply.STORAGE, message });
/**
 * The model and catalog are loaded. `summary`: the catalog's (items, model name, default weights,
 * threshold); `model`: what answers ({family, engine, dtype}: 'mobileclip', 'candle', 'f16');
 * `maxPhotoBytes`: the largest photo file the matcher accepts (the page refuses a larger one
 * before reading it); `thumbnails`: [{path, blob}] or null; `threads`: how many the model runs
 * on, and `threading` why (threads.js' startPackage's).
 */
export const readyReply = ({ summary, model, maxPhotoBytes, fromCache, thumbnails, timings, wasmMemoryBytes, threads, threading }) =>
  ({ type: Reply.READY, summary, model, maxPhotoBytes, fromCache, thumbnails, timings, wasmMemoryBytes, threads, threading });
export const loadErrorReply = (message) => ({ type: Reply.LOAD_ERROR, message });
/** The cache was pruned after a load: {deleted, kept, cachesDeleted}. */
export const prunedReply = (stats) => ({ type: Reply.PRUNED, ...stats });
export const resultReply = (id, ranking, ms) => ({ type: Reply.RESULT, id, ranking, ms });
/** `fatal`: the wasm instance trapped and is unusable, so the page restarts the worker; `panic`:
 * the panic's message when the trap was a panic (src/web/panic_hook.rs), else undefined;
 * `outOfMemory`: the trap followed an allocation that failed (src/web/out_of_memory.rs). */
export const errorReply = (id, message, fatal, panic, outOfMemory = false) => ({ type: Reply.ERROR, id, message, fatal, panic, outOfMemory });
