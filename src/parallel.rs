//! Splitting work across threads: rayon's pool natively (`RAYON_NUM_THREADS` sets its size) and
//! in the multi-threaded browser build (`threads` feature: Web Workers, pool sized by the page),
//! the calling thread alone in the plain browser build.

use std::ops::Range;

/// Below this many multiply-adds a product runs on one thread: waking another costs more.
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// Calls `f` on contiguous ranges covering `0..items`, one per thread when `work` (a rough
/// count of operations) makes that worth it, and returns when all are done.
pub fn for_each_chunk<F>(items: usize, work: usize, f: F)
where
    F: Fn(Range<usize>) + Sync + Send,
{
    let threads = threads().min(items.max(1));
    if threads <= 1 || work < MIN_PARALLEL_WORK {
        f(0..items);
        return;
    }
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    {
        let f = &f;
        rayon::scope(|scope| {
            for t in 0..threads {
                let range = (items * t / threads)..(items * (t + 1) / threads);
                scope.spawn(move |_| f(range));
            }
        });
    }
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    f(0..items);
}

/// Threads the work may use.
pub fn threads() -> usize {
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    {
        rayon::current_num_threads()
    }
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    {
        1
    }
}

/// Below this many values an element-wise pass runs on one thread.
const MIN_PARALLEL_VALUES: usize = 1 << 15;

/// Calls `f(first_row, rows)` on disjoint blocks of whole `row_len`-wide rows covering `data`, one
/// block per thread when `data` is large enough, and returns when all are done.
pub fn for_each_row_block<F>(data: &mut [f32], row_len: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    let rows = data.len() / row_len.max(1);
    let threads = threads().min(rows.max(1));
    if threads <= 1 || data.len() < MIN_PARALLEL_VALUES {
        f(0, data);
        return;
    }
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    {
        let f = &f;
        rayon::scope(|scope| {
            let mut rest = data;
            for t in 0..threads {
                let first = rows * t / threads;
                let n = rows * (t + 1) / threads - first;
                let (block, tail) = std::mem::take(&mut rest).split_at_mut(n * row_len);
                rest = tail;
                scope.spawn(move |_| f(first, block));
            }
        });
    }
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    f(0, data);
}
