// The end-to-end tests' own page (never shipped): the app's <clipmatch-search> with the test
// hooks the shipped page does not have, from this page's URL:
//   ?bundle=PATH            the bundle, relative to the repository's root
//   ?requestTimeoutMs=N     the time limit of one request to the model
//   ?testFault=KIND-once|KIND-twice   the first one or two model workers are fault-worker.js,
//                           failing that way on their first photo (KIND: trap, hang, crash, or
//                           panic: a real panic in the wasm package, which must then be a
//                           `--features test-hooks` build; oom: the threaded package's shared
//                           memory grown to its maximum before the photo, so the photo runs out of it)
//   ?testThreadFault=KIND   every model worker is threads-fault-worker.js, whose threaded start
//                           fails (KIND: memory, shared-memory, worker)
//   ?testMemory=1           the model worker is memory-worker.js, which reports the wasm memory's
//                           size after each reply; the page keeps the reports in order in
//                           `window.testWasmMemory` ({reply, bytes})
// Not standalone: no service worker; one thread unless the server sends the isolation headers.
import { mountSearch } from '../../../www/clipmatch-search.js';

const params = new URLSearchParams(location.search);
const root = new URL('../../../', import.meta.url);

/** Makes the first `workers` model workers `script` (a URL relative to this file). */
function replaceModelWorkers(script, workers) {
  const NativeWorker = globalThis.Worker;
  let left = workers;
  globalThis.Worker = class extends NativeWorker {
    constructor(url, options) {
      const modelWorker = new URL(url, location.href).href === new URL('www/worker.js', root).href;
      if (modelWorker && left > 0) {
        left--;
        super(new URL(script, import.meta.url), options);
      } else {
        super(url, options);
      }
    }
  };
}

const fault = /^(trap|hang|crash|panic|oom)-(once|twice)$/.exec(params.get('testFault') || '');
if (fault) replaceModelWorkers(`fault-worker.js?fault=${fault[1]}`, fault[2] === 'once' ? 1 : 2);
const threadFault = /^(memory|shared-memory|worker)$/.exec(params.get('testThreadFault') || '');
if (threadFault) replaceModelWorkers(`threads-fault-worker.js?fault=${threadFault[1]}`, Infinity);
if (params.get('testMemory') === '1') {
  replaceModelWorkers('memory-worker.js', Infinity);
  window.testWasmMemory = [];
  new BroadcastChannel('clipmatch-test-memory').onmessage = ({ data }) => window.testWasmMemory.push(data);
}
const timeout = Number(params.get('requestTimeoutMs'));
mountSearch(document.querySelector('clipmatch-search'), {
  bundle: new URL(params.get('bundle'), root).href,
  requestTimeoutMs: Number.isInteger(timeout) && timeout > 0 ? timeout : undefined,
  onState: (s) => { document.body.dataset.state = s; },
});
