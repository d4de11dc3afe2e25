// The model worker with a fault (tests only; hooks/app.js starts it in place of www/worker.js):
// the app's worker, whose first photo (or region; for a panic, a photo file) fails as `?fault=`
// says:
//   trap   the reply a trapped wasm instance gives (WebAssembly.RuntimeError: unreachable)
//   hang   no reply at all
//   crash  an uncaught error: the worker's `error` event
//   panic  a real panic in the wasm package (its `--features test-hooks` build's panicForTest)
import '../../../www/worker.js';
import { Request, errorReply } from '../../../www/messages.js';

const PANIC_TEXT = 'a panic made by the test page';
const kind = new URLSearchParams(self.location.search).get('fault');
const handle = self.onmessage;
let armed = true;

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
  }
  // hang: no reply
  return undefined;
};
