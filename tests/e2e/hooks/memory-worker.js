// The model worker reporting its wasm memory (tests only; hooks/app.js starts it in place of
// www/worker.js with `?testMemory=1`): after each reply to a load or a photo, the byte length of
// the wasm instance's memory (which never shrinks, so it is the peak so far) on the
// BroadcastChannel `clipmatch-test-memory`, as {reply, bytes}.
import '../../../www/worker.js';
import { Reply } from '../../../www/messages.js';

const channel = new BroadcastChannel('clipmatch-test-memory');
const post = self.postMessage.bind(self);

async function report(reply) {
  // The package the app's worker loaded (the same module, so the same instance: its glue hands
  // back the instance it started).
  const pkg = await import('../../../pkg/clipmatch.js');
  const instance = await pkg.default();
  channel.postMessage({ reply, bytes: instance.memory.buffer.byteLength });
}

self.postMessage = (msg, transfer) => {
  post(msg, transfer);
  if (msg.type === Reply.READY || msg.type === Reply.RESULT || msg.type === Reply.ERROR) report(msg.type);
};
