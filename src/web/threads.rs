//! The page's hold on the threads of the multi-threaded build: how many of the pool's the work
//! uses, and the product it times them on to choose (www/threads.js). In the single-threaded
//! build the one thread is all there is.

use wasm_bindgen::prelude::*;

/// The work uses at most `threads` of the pool's threads from now on.
#[wasm_bindgen(js_name = setThreads)]
pub fn set_threads(threads: usize) {
    crate::parallel::set_thread_limit(threads);
}

/// Runs the fixed product the page times on each candidate thread count.
#[wasm_bindgen(js_name = threadProbe)]
pub fn thread_probe() -> f32 {
    crate::kernels::thread_probe::run()
}
