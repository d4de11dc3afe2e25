// The model worker with a fault (tests only; hooks/app.js starts it in place of www/worker.js):
// the app's worker, whose first photo (or region; for a panic, a photo file) fails as `?fault=`
// says:
//   trap   the reply a trapped wasm instance gives (WebAssembly.RuntimeError: unreachable)
//   hang   no reply at all
//   crash  an uncaught error: the worker's `error` event
//   panic  a real panic in the wasm package (its `--features test-hooks` build's panicForTest)
//   oom    the threaded package's shared memory grown to its maximum first, so that the photo
//          runs out of memory in the wasm package (the page must be cross-origin isolated)
import '../../../www/worker.js';
import { Request, errorReply } from '../../../www/messages.js';

const PANIC_TEXT = 'a panic made by the test page';
const kind = new URLSearchParams(self.location.search).get('fault');
const handle = self.onmessage;
let armed = true;

// The shared memories the threaded package's glue makes (the single-threaded one's is the module's own).
const memories = [];
const NativeMemory = WebAssembly.Memory;
WebAssembly.Memory = function Memory(descriptor) {
  memories.push(new NativeMemory(descriptor));
  return memories.at(-1);
};
WebAssembly.Memory.prototype = NativeMemory.prototype;

/** Grows `memory` until it can grow no more: its maximum, whatever that is. */
function fill(memory) {
  for (let pages = 1 << 15; pages > 0; pages >>= 1) {
    try {
      for (;;) memory.grow(pages);
    } catch {
      // this step is too large now: a smaller one
    }
  }
}

self.onmessage = async (event) => {
  const msg = event.data;
  const photo = msg.type === Request.RANK || msg.type === Request.RANK_PIXELS || msg.type === Request.RANK_REGION;
  if (!armed || !photo) return handle(event);
  armed = false;
  if (kind === 'trap') {
    self.postMessage(errorReply(msg.id, 'unreachable (simulated by the test page)', true));
  } else if (kind === 'crash') {
    setTimeout(() => { throw new Error('the worker crashed (simulated by the test page)'); });
  } else if (kind === 'panic') {
    // The package the app's worker loaded (the same module, so the same wasm instance): its
    // matcher panics inside the app's own request handling.
    const pkg = await import('../../../pkg/clipmatch.js');
    pkg.Matcher.prototype.rankImage = () => pkg.panicForTest(PANIC_TEXT);
    return handle(event);
  } else if (kind === 'oom') {
    if (memories.length === 0) throw new Error('fault-worker.js: oom needs the threaded package (a cross-origin isolated page)');
    fill(memories[0]);
    return handle(event);
  }
  // hang: no reply
  return undefined;
};
