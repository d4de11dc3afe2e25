//! Settings a native program using this crate applies once, at the start of `main` before any
//! thread exists: [`configure`]. The CLI and the examples that time what it does call it, so
//! they run under the same settings. In the browser there is nothing to set: wasm memory only
//! grows (Rust's allocator reuses it) and candle's operations run on the calling thread.

/// Applies every setting below.
pub fn configure() {
    keep_freed_memory();
    limit_candle_spinning();
}

/// glibc keeps freed memory in the process's heap for reuse (on Linux; elsewhere nothing).
///
/// candle allocates a new tensor for every operation's output. At batch 16 many of them are
/// tens of MB (a FastViT stage-1 activation: 16 x 64 x 64 x 64 floats = 16 MB, its MLP's 48 MB),
/// over glibc's largest mmap threshold (32 MB) or past its dynamic one, so glibc maps each one
/// fresh and unmaps it when it is freed: the kernel then faults in and zeroes every page again
/// for the next operation. Measured with `perf record` on `examples/build_phases` (MobileCLIP2-S0,
/// batch 16, 1 thread): 57 % of the time was in the kernel, mostly page faults and page clearing.
/// Keeping large blocks in the heap (no mmap for allocations, no trimming of the heap's top below
/// 2 GB) lets the next batch reuse them; the process keeps its peak memory until it exits, which
/// for a batch job is what it would need again anyway.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads allocate.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// How long candle's own thread pool spins before it sleeps, unless `CANDLE_BARRIER_POOL_SPIN_LIMIT`
/// is set: 1,000 spins instead of candle's 25,000. The candle engine alternates candle's pool
/// (element-wise operations) with rayon's (this crate's kernels installed as candle operations);
/// a candle worker still spinning after its operation takes the core rayon's worker needs. On this
/// 2-core machine (MobileCLIP2-S0, other work running): `clipmatch embed` of 6 photos on 2 threads
/// 3.1-4.7 s -> 1.4 s; batch 16 on 2 threads 6.2-7.2 s -> 5.3-5.7 s for 32 photos. It sets an
/// environment variable, which is why it runs before any thread exists.
fn limit_candle_spinning() {
    const VAR: &str = "CANDLE_BARRIER_POOL_SPIN_LIMIT";
    if std::env::var_os(VAR).is_none() {
        std::env::set_var(VAR, "1000");
    }
}
