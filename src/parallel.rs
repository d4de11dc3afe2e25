//! Splitting work across threads: rayon's pool natively (`RAYON_NUM_THREADS` sets its size) and
//! in the multi-threaded browser build (`threads` feature: Web Workers, pool sized by the page),
//! the calling thread alone in the plain browser build.

use std::ops::Range;

/// Below this many multiply-adds a product runs on one thread: waking another costs more.
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// Ranges a product is cut into per thread when it runs on several: more than one, so a thread
/// that starts late or is interrupted (the page's other threads share the cores) leaves part of
/// its share to the others instead of making them wait for it.
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
const CHUNKS_PER_THREAD: usize = 4;

/// Calls `f` on contiguous ranges covering `0..items`, [`CHUNKS_PER_THREAD`] per thread when
/// `work` (a rough count of operations) makes that worth it, and returns when all are done.
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
            let chunks = (threads * CHUNKS_PER_THREAD).min(items);
            for t in 0..chunks {
                let range = (items * t / chunks)..(items * (t + 1) / chunks);
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

/// A mutable buffer that several threads write at disjoint places: the one way this crate shares
/// mutable memory across threads (rayon's scoped jobs need `Send + Sync` captures, and a split
/// into `&mut` pieces does not fit the column-wise or head-wise layouts of the products).
/// The borrow keeps the buffer alive and unaliased for as long as the writers may use it.
pub struct DisjointWrites<'a, T> {
    ptr: *mut T,
    len: usize,
    _buffer: std::marker::PhantomData<&'a mut [T]>,
}

impl<T> Clone for DisjointWrites<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DisjointWrites<'_, T> {}

// SAFETY: writers promise (see `at`) to touch disjoint elements, so sharing the pointer across
// threads is as safe as handing each thread its own `&mut` piece.
unsafe impl<T: Send> Send for DisjointWrites<'_, T> {}
unsafe impl<T: Send> Sync for DisjointWrites<'_, T> {}

impl<'a, T> DisjointWrites<'a, T> {
    pub fn new(buffer: &'a mut [T]) -> Self {
        Self { ptr: buffer.as_mut_ptr(), len: buffer.len(), _buffer: std::marker::PhantomData }
    }

    /// A pointer to element `index`.
    ///
    /// # Safety
    /// `index` is inside the buffer, and what is written through the pointer is written by no
    /// other thread while the writers run.
    #[inline(always)]
    pub unsafe fn at(self, index: usize) -> *mut T {
        debug_assert!(index <= self.len);
        self.ptr.add(index)
    }
}
