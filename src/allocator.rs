//! How a native program using this crate should have glibc's allocator keep freed memory.
//!
//! candle allocates a new tensor for every operation's output. At batch 16 many of them are
//! tens of MB (a FastViT stage-1 activation: 16 x 64 x 64 x 64 floats = 16 MB, its MLP's 48 MB),
//! over glibc's largest mmap threshold (32 MB) or past its dynamic one, so glibc maps each one
//! fresh and unmaps it when it is freed: the kernel then faults in and zeroes every page again
//! for the next operation. Measured with `perf record` on `examples/build_phases` (MobileCLIP2-S0,
//! batch 16, 1 thread): 57 % of the time was in the kernel, mostly page faults and page clearing.
//! Keeping large blocks in the heap (no mmap for allocations, no trimming of the heap's top below
//! 2 GB) lets the next batch reuse them; the process keeps its peak memory until it exits, which
//! for a batch job is what it would need again anyway.
//!
//! In the browser there is nothing to do: wasm memory only grows, and Rust's allocator reuses it.

/// Keeps freed memory in the process's heap for reuse (glibc on Linux; elsewhere nothing).
/// Call once at the start of `main`, before threads start.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
