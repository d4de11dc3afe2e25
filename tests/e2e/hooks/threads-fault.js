// The failures of threads-fault-worker.js, made before the app's worker module runs.
const fault = new URLSearchParams(self.location.search).get('fault');

if (fault === 'memory') {
  WebAssembly.Memory = new Proxy(WebAssembly.Memory, {
    construct(target, args, newTarget) {
      if (args[0]?.shared) throw new RangeError('WebAssembly.Memory(): could not allocate memory (refused by the test page)');
      return Reflect.construct(target, args, newTarget);
    },
  });
} else if (fault === 'shared-memory') {
  delete self.SharedArrayBuffer;
} else if (fault === 'worker') {
  const NativeWorker = self.Worker;
  let made = 0;
  self.Worker = class extends NativeWorker {
    constructor(url, options) {
      made++;
      super(made === 2 ? new URL('missing-pool-worker.js', import.meta.url) : url, options);
    }
  };
} else {
  throw new Error(`threads-fault.js: unknown fault ${fault}`);
}
