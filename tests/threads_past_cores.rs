//! More threads than cores (a phone whose browser reports more cores than it has): a pool of 4 on
//! this machine answers the page's fixed product with about the CPU time one thread takes (its
//! threads sleep rather than spin while they wait for each other), and a thread limit keeps the
//! work on that many threads. The browser's own check is tests/e2e/threads.mjs. One test in this
//! binary: the pool and the limit are the process's. Native only (CPU clocks, a pool of this
//! machine's threads).

#![cfg(not(target_arch = "wasm32"))]

use std::collections::HashSet;
use std::sync::Mutex;

use clipmatch::kernels::thread_probe;
use clipmatch::parallel::{for_each_chunk, set_thread_limit, with_team};

/// CPU time of the whole process (every thread), in seconds.
fn process_cpu_seconds() -> f64 {
    let mut t = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `t` is a valid timespec to write.
    assert_eq!(unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) }, 0);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

/// The least CPU time of `runs` runs of the probe, in seconds.
fn probe_cpu_seconds(runs: usize) -> f64 {
    (0..runs)
        .map(|_| {
            let start = process_cpu_seconds();
            std::hint::black_box(thread_probe::run());
            process_cpu_seconds() - start
        })
        .fold(f64::INFINITY, f64::min)
}

/// The threads that ran a chunk of a large step, inside a team and outside one.
fn threads_used() -> (usize, usize) {
    let record = |seen: &Mutex<HashSet<std::thread::ThreadId>>| {
        for_each_chunk(64, usize::MAX, |_| {
            seen.lock().unwrap().insert(std::thread::current().id());
            // Long enough for every thread allowed to take a chunk.
            let start = std::time::Instant::now();
            while start.elapsed().as_micros() < 2000 {
                std::hint::spin_loop();
            }
        })
    };
    let (inside, outside) = (Mutex::new(HashSet::new()), Mutex::new(HashSet::new()));
    with_team(|| record(&inside));
    record(&outside);
    (inside.into_inner().unwrap().len(), outside.into_inner().unwrap().len())
}

#[test]
fn four_threads_on_fewer_cores_cost_about_one_threads_cpu_and_a_limit_holds() {
    rayon::ThreadPoolBuilder::new().num_threads(4).build_global().expect("the first pool of this process");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    set_thread_limit(1);
    let one = probe_cpu_seconds(7);
    set_thread_limit(4);
    let four = probe_cpu_seconds(7);
    eprintln!("probe CPU time: 1 thread {:.1} ms, 4 threads {:.1} ms ({cores} cores)", one * 1e3, four * 1e3);
    assert!(four <= 1.3 * one, "4 threads used {:.1} ms of CPU, 1 thread {:.1} ms", four * 1e3, one * 1e3);

    set_thread_limit(2);
    let (inside, outside) = threads_used();
    assert!(inside <= 2 && outside <= 2, "a limit of 2: {inside} threads inside a team, {outside} outside");
    set_thread_limit(usize::MAX);
    let (inside, outside) = threads_used();
    if cores >= 2 {
        assert!(inside > 2 || outside > 2, "no limit: {inside} threads inside a team, {outside} outside");
    }
}
