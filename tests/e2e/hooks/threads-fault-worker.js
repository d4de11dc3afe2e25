// The model worker with a threaded start made to fail (tests only; hooks/app.js starts it in
// place of www/worker.js for `?testThreadFault=`): the app's worker, in a scope where, as `?fault=`
// says,
//   memory         the shared memory cannot be made (WebAssembly.Memory refuses it, as iOS
//                  Safari refuses a large one)
//   shared-memory  there is no SharedArrayBuffer (though the page is cross-origin isolated)
//   worker         the second Web Worker of the pool fails to start (its script is missing)
import './threads-fault.js';
import '../../../www/worker.js';
