//! Splitting work across threads: rayon's pool natively (`RAYON_NUM_THREADS` sets its size) and
//! in the multi-threaded browser build (`threads` feature: Web Workers, pool sized by the page,
//! of which [`set_thread_limit`] may use fewer), the calling thread alone in the plain browser
//! build.

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Below this many multiply-adds a product runs on one thread: waking another costs more.
const MIN_PARALLEL_WORK: usize = 1 << 20;

/// The same inside [`with_team`], whose threads start a step without being woken.
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
const MIN_TEAM_WORK: usize = 1 << 17;

/// Ranges a product is cut into per thread when it runs on several: more than one, so a thread
/// that starts late or is interrupted (the page's other threads share the cores) leaves part of
/// its share to the others instead of making them wait for it.
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
const CHUNKS_PER_THREAD: usize = 4;

/// [`MIN_PARALLEL_WORK`], or [`MIN_TEAM_WORK`] on a team's leader.
fn min_parallel_work() -> usize {
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    if matches!(team::role(), team::Role::Leader(_)) {
        return MIN_TEAM_WORK;
    }
    MIN_PARALLEL_WORK
}

/// Calls `f` on contiguous ranges covering `0..items`, [`CHUNKS_PER_THREAD`] per thread when
/// `work` (a rough count of operations) makes that worth it, and returns when all are done.
pub fn for_each_chunk<F>(items: usize, work: usize, f: F)
where
    F: Fn(Range<usize>) + Sync + Send,
{
    let threads = threads().min(items.max(1));
    if threads <= 1 || work < min_parallel_work() {
        f(0..items);
        return;
    }
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    {
        let chunks = (threads * CHUNKS_PER_THREAD).min(items);
        match team::role() {
            team::Role::Leader(t) => return t.run(items, chunks, &f),
            team::Role::Member => return f(0..items),
            team::Role::None if limited_outside_pool() => return with_team(|| for_each_chunk(items, work, f)),
            team::Role::None => {}
        }
        let f = &f;
        rayon::scope(|scope| {
            for t in 0..chunks {
                scope.spawn(move |_| f(chunk_range(items, chunks, t)));
            }
        });
    }
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    f(0..items);
}

/// Chunk `i` of `0..items` cut into `chunks` contiguous ranges of near-equal length.
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
fn chunk_range(items: usize, chunks: usize, i: usize) -> Range<usize> {
    (items * i / chunks)..(items * (i + 1) / chunks)
}

/// Runs `f` (a whole forward pass: dozens of products and element-wise passes one after another)
/// with the pool's threads held in a team for its duration: between two parallel steps they spin
/// briefly on an atomic before going to sleep, so a step that follows another closely starts on
/// every thread at once instead of after a wake-up (in the browser, a Web Worker sleeping in
/// `Atomics.wait` until `Atomics.notify`), and inside a team smaller steps are worth splitting.
/// In Chromium on 2 threads this took ViT-B/32's int8 tower from 83 to 72 ms and MobileCLIP2-S0's
/// f32 tower from 143 to 118 ms (BENCHMARKS.md). The spin is bounded ([`team`]'s `SPINS`), so a
/// helper whose step does not come soon sleeps instead of taking a core from threads with work
/// (more threads than cores) and heating a phone. `f` runs on the calling thread, with up to
/// [`threads`]` - 1` pool threads as its helpers (so in the browser a trap in `f`, e.g. out of
/// memory, reaches the caller's JavaScript), each back in the pool as soon as no step comes for
/// a while: `f` may also use rayon itself (candle's operations do), which then finds the pool's
/// threads free. Inside a pool thread or a team, or with one thread, `f` simply runs.
pub fn with_team<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    {
        let helpers = threads().saturating_sub(1);
        let in_team = !matches!(team::role(), team::Role::None);
        if helpers > 0 && !in_team && rayon::current_thread_index().is_none() {
            return team::Team::hold(helpers, f);
        }
    }
    f()
}

/// The most threads the work may use, whatever the pool's size ([`set_thread_limit`]).
static THREAD_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Lets the work use at most `threads` threads (at least 1) of the pool from now on: the page
/// starts a pool, times a product on 1, 2, ... of its threads and keeps the fewest that are about
/// as fast as the most (a browser may report more cores than the device has).
pub fn set_thread_limit(threads: usize) {
    THREAD_LIMIT.store(threads.max(1), Ordering::Relaxed);
}

/// Threads in the pool.
fn pool_threads() -> usize {
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    {
        rayon::current_num_threads()
    }
    #[cfg(all(target_arch = "wasm32", not(feature = "threads")))]
    {
        1
    }
}

/// Threads the work may use: the pool's, or fewer ([`set_thread_limit`]).
pub fn threads() -> usize {
    pool_threads().min(THREAD_LIMIT.load(Ordering::Relaxed))
}

/// Whether work outside a team must go through one to use only [`threads`] of the pool's
/// threads (rayon's jobs go to any thread of the pool), which it can where the caller is not a
/// pool thread itself.
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
fn limited_outside_pool() -> bool {
    threads() < pool_threads() && rayon::current_thread_index().is_none()
}

/// Below this many values an element-wise pass runs on one thread.
const MIN_PARALLEL_VALUES: usize = 1 << 15;

/// The same inside [`with_team`].
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
const MIN_TEAM_VALUES: usize = 1 << 12;

/// [`MIN_PARALLEL_VALUES`], or [`MIN_TEAM_VALUES`] on a team's leader.
fn min_parallel_values() -> usize {
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    if matches!(team::role(), team::Role::Leader(_)) {
        return MIN_TEAM_VALUES;
    }
    MIN_PARALLEL_VALUES
}

/// Calls `f(first_row, rows)` on disjoint blocks of whole `row_len`-wide rows covering `data`, one
/// block per thread when `data` is large enough ([`CHUNKS_PER_THREAD`] inside a team, taken as
/// threads come free), and returns when all are done.
pub fn for_each_row_block<F>(data: &mut [f32], row_len: usize, f: F)
where
    F: Fn(usize, &mut [f32]) + Sync + Send,
{
    let rows = data.len() / row_len.max(1);
    let threads = threads().min(rows.max(1));
    if threads <= 1 || data.len() < min_parallel_values() {
        f(0, data);
        return;
    }
    #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
    {
        let blocks = |t: usize| rows * t / threads;
        match team::role() {
            team::Role::Leader(team) => {
                let out = DisjointWrites::new(data);
                let chunks = (threads * CHUNKS_PER_THREAD).min(rows);
                team.run(rows, chunks, &|range: Range<usize>| {
                    let (first, end) = (range.start * row_len, range.end * row_len);
                    // SAFETY: the chunk's rows are inside `data` and only this call writes them.
                    let block = unsafe { std::slice::from_raw_parts_mut(out.at(first), end - first) };
                    f(range.start, block);
                });
                return;
            }
            team::Role::Member => return f(0, data),
            team::Role::None if limited_outside_pool() => return with_team(|| for_each_row_block(data, row_len, f)),
            team::Role::None => {}
        }
        let f = &f;
        rayon::scope(|scope| {
            let mut rest = data;
            for t in 0..threads {
                let first = blocks(t);
                let n = blocks(t + 1) - first;
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

/// The threads of [`with_team`]: a leader (the thread running the forward pass, never a pool
/// thread) publishes each parallel step, and it and the helpers take the step's chunks from one
/// atomic counter.
///
/// A helper is a rayon job that stays on its pool thread only while steps keep coming: after a
/// step it checks for the next one [`SPINS`] times, then returns its thread to the pool (where
/// rayon's own idle loop puts it to sleep), and the leader enlists a helper again with its next
/// step. So whatever else the leader waits on leaves no pool thread held: candle's operations that
/// call rayon themselves (candle-nn's LayerNorm splits its rows with `par_chunks`), run from the
/// leader, are rayon jobs that need a free pool thread, and when every pool thread was a helper
/// waiting for the leader's next step (two teams at once on 2 threads) the leader and its helpers
/// waited on each other for ever.
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
mod team {
    use std::cell::Cell;
    use std::ops::Range;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Condvar, Mutex, Weak};

    /// Times a helper checks for a new step before it goes back to the pool: about 50 µs natively
    /// (x86's `pause` takes 10-140 cycles) and in the browser (where `spin_loop` is no instruction
    /// and a check is a load from the cache), about the time a wake-up takes, so that leaving
    /// costs a helper at most what it saves. The leader waits the same before it sleeps.
    #[cfg(not(target_arch = "wasm32"))]
    pub(super) const SPINS: u32 = 1 << 11;
    #[cfg(target_arch = "wasm32")]
    pub(super) const SPINS: u32 = 1 << 15;

    /// A step: the function and how its items are cut.
    struct Step<'a> {
        f: &'a (dyn Fn(Range<usize>) + Sync),
        items: usize,
    }

    pub struct Team {
        /// `generation << 32 | chunks << 16 | next chunk`: which step is published, how many
        /// chunks it has and the first not yet taken, changed together so that a thread can
        /// only take a chunk of the step it read.
        state: AtomicU64,
        /// The published step (on the leader's stack while the step runs).
        step: AtomicPtr<Step<'static>>,
        /// Chunks of the current step finished.
        done: AtomicUsize,
        /// A chunk panicked on a helper.
        poisoned: AtomicBool,
        stop: AtomicBool,
        /// Helpers the team may have at once.
        helpers: usize,
        /// Helpers handed to rayon and not yet gone back to the pool (queued or running).
        enlisted: AtomicUsize,
        /// The team itself, for the helpers the leader hands to rayon (`rayon::spawn` takes
        /// only what lives as long as it needs: a helper may start after the leader is done).
        me: Weak<Team>,
        /// The leader asleep (or about to sleep) on `finished` until its step's chunks are: who
        /// finishes a chunk takes `asleep` and notifies only when this count is not zero, so
        /// nothing costs a system call while the leader spins.
        sleeping_leader: AtomicUsize,
        asleep: Mutex<()>,
        finished: Condvar,
    }

    pub enum Role {
        /// Not in a team: rayon as usual.
        None,
        /// The thread that publishes steps.
        Leader(&'static Team),
        /// A helper inside a chunk: anything nested runs on it alone.
        Member,
    }

    thread_local! {
        static LEADER: Cell<Option<&'static Team>> = const { Cell::new(None) };
        static MEMBER: Cell<bool> = const { Cell::new(false) };
    }

    pub fn role() -> Role {
        if MEMBER.with(Cell::get) {
            return Role::Member;
        }
        LEADER.with(Cell::get).map_or(Role::None, Role::Leader)
    }

    const CHUNK_BITS: u32 = 16;
    const MAX_CHUNKS: usize = (1 << CHUNK_BITS) - 1;

    fn generation(state: u64) -> u64 {
        state >> 32
    }

    fn chunks(state: u64) -> usize {
        ((state >> CHUNK_BITS) as usize) & MAX_CHUNKS
    }

    fn next(state: u64) -> usize {
        (state as usize) & MAX_CHUNKS
    }

    /// Sets `stop` however the leader's part ends, panics included, so the helpers return.
    struct StopOnDrop<'a>(&'a Team);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            LEADER.with(|l| l.set(None));
            self.0.stop.store(true, Ordering::SeqCst);
        }
    }

    /// Counts a chunk as finished even when it panics, so the leader is not left waiting.
    struct Finished<'a>(&'a Team);

    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.poisoned.store(true, Ordering::Release);
            }
            self.0.done.fetch_add(1, Ordering::SeqCst);
            self.0.notify_leader();
        }
    }

    /// Waits, however `run` ends, until no thread is inside the step (whose function lives on
    /// the leader's stack); when the leader's own chunk panicked, the chunks nobody took are
    /// counted as finished first.
    struct AllFinished<'a> {
        team: &'a Team,
        generation: u64,
        chunks: usize,
    }

    impl Drop for AllFinished<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                while self.team.take(self.generation).is_some() {
                    self.team.done.fetch_add(1, Ordering::Release);
                }
            }
            self.team.wait_for_chunks(self.chunks);
        }
    }

    impl Team {
        /// `f` on the calling thread (not a pool thread) as the leader, with up to `helpers` pool
        /// threads taking part in its steps.
        pub fn hold<R>(helpers: usize, f: impl FnOnce() -> R) -> R {
            let team = Arc::new_cyclic(|me| Team {
                state: AtomicU64::new(0),
                step: AtomicPtr::new(std::ptr::null_mut()),
                done: AtomicUsize::new(0),
                poisoned: AtomicBool::new(false),
                stop: AtomicBool::new(false),
                helpers,
                enlisted: AtomicUsize::new(0),
                me: me.clone(),
                sleeping_leader: AtomicUsize::new(0),
                asleep: Mutex::new(()),
                finished: Condvar::new(),
            });
            let _stop = StopOnDrop(&team);
            // SAFETY: the reference is cleared (StopOnDrop) before `team`, which keeps the team
            // alive, is dropped; helpers hold their own `Arc`.
            LEADER.with(|l| l.set(Some(unsafe { &*Arc::as_ptr(&team) })));
            f()
        }

        /// Publishes `f` over `0..items` in `chunks` chunks, takes chunks itself, and returns when
        /// every chunk is finished.
        pub fn run(&self, items: usize, chunks: usize, f: &(dyn Fn(Range<usize>) + Sync)) {
            let chunks = chunks.clamp(1, MAX_CHUNKS);
            let step = Step { f, items };
            self.done.store(0, Ordering::Relaxed);
            // SAFETY of the lifetime: `step` outlives every use of the pointer, since a helper
            // dereferences it only after taking a chunk of this generation, and this function
            // returns only when all of them are finished.
            self.step.store(&step as *const Step as *mut Step<'static>, Ordering::Release);
            let generation = generation(self.state.load(Ordering::Relaxed)) + 1;
            self.state.store(generation << 32 | (chunks as u64) << CHUNK_BITS, Ordering::SeqCst);
            // After the publication, both sequentially consistent with a leaving helper's count
            // and check (`leave`): either this sees the helper gone and enlists another, or the
            // helper sees this step and stays.
            while self.enlist() {
                let helper = self.me.upgrade().expect("the leader holds its team");
                rayon::spawn(move || helper.help());
            }
            let _all = AllFinished { team: self, generation, chunks };
            while let Some(i) = self.take(generation) {
                let _finished = Finished(self);
                f(super::chunk_range(items, chunks, i));
            }
            drop(_all);
            assert!(!self.poisoned.load(Ordering::Acquire), "a thread of the team panicked");
        }

        /// Counts one more helper if the team has room for it.
        fn enlist(&self) -> bool {
            let room = |n: usize| (n < self.helpers).then_some(n + 1);
            self.enlisted.fetch_update(Ordering::SeqCst, Ordering::SeqCst, room).is_ok()
        }

        /// The state of the first step after generation `seen`, if one is published within
        /// [`SPINS`] checks and `stop` is not set.
        fn next_step(&self, seen: u64) -> Option<u64> {
            for _ in 0..SPINS {
                if self.stop.load(Ordering::SeqCst) {
                    return None;
                }
                let state = self.state.load(Ordering::SeqCst);
                if generation(state) != seen {
                    return Some(state);
                }
                std::hint::spin_loop();
            }
            None
        }

        /// Whether a helper that saw no step after generation `seen` goes back to the pool:
        /// uncounted first, it stays (counted again) only if a step came meanwhile that the
        /// leader may not have enlisted a helper for.
        fn leave(&self, seen: u64) -> bool {
            self.enlisted.fetch_sub(1, Ordering::SeqCst);
            let published = generation(self.state.load(Ordering::SeqCst)) != seen;
            !(published && !self.stop.load(Ordering::SeqCst) && self.enlist())
        }

        /// Waits (spinning [`SPINS`] checks, then asleep on `finished`) until `chunks` chunks of
        /// the current step are finished.
        fn wait_for_chunks(&self, chunks: usize) {
            let finished = || self.done.load(Ordering::SeqCst) >= chunks;
            for _ in 0..SPINS {
                if finished() {
                    return;
                }
                std::hint::spin_loop();
            }
            let mut guard = self.asleep.lock().unwrap_or_else(|e| e.into_inner());
            // Counted before the last check, both sequentially consistent with the count of
            // finished chunks and the read of this count in `notify_leader`: either this check
            // sees the last chunk finished, or its finisher sees this sleeper and notifies under
            // the lock, so not before the leader waits.
            self.sleeping_leader.fetch_add(1, Ordering::SeqCst);
            while !finished() {
                guard = self.finished.wait(guard).unwrap_or_else(|e| e.into_inner());
            }
            self.sleeping_leader.fetch_sub(1, Ordering::SeqCst);
        }

        /// Wakes the leader asleep in [`Team::wait_for_chunks`], after a chunk was counted
        /// finished (sequentially consistent).
        fn notify_leader(&self) {
            if self.sleeping_leader.load(Ordering::SeqCst) > 0 {
                let _guard = self.asleep.lock().unwrap_or_else(|e| e.into_inner());
                self.finished.notify_all();
            }
        }

        /// The next chunk of step `generation`, if that step is still the published one and has
        /// chunks left.
        fn take(&self, generation: u64) -> Option<usize> {
            let mut state = self.state.load(Ordering::Acquire);
            loop {
                if self::generation(state) != generation || next(state) >= chunks(state) {
                    return None;
                }
                match self.state.compare_exchange_weak(state, state + 1, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => return Some(next(state)),
                    Err(now) => state = now,
                }
            }
        }

        /// A helper (a rayon job): takes the chunks of each step published while it waits
        /// ([`SPINS`] checks after the last), then goes back to the pool. A panic in a chunk is
        /// caught and reported to the leader (a panic escaping a spawned job would abort).
        fn help(&self) {
            let was_member = MEMBER.with(|m| m.replace(true));
            let mut seen = 0;
            loop {
                let Some(state) = self.next_step(seen) else {
                    if self.leave(seen) {
                        break;
                    }
                    continue;
                };
                let generation = generation(state);
                let step = self.step.load(Ordering::Acquire);
                while let Some(i) = self.take(generation) {
                    // SAFETY: a chunk of `generation` was taken, so that step is still running
                    // and `step` (read after its generation was seen) points at it.
                    let step = unsafe { &*step };
                    let _finished = Finished(self);
                    let range = super::chunk_range(step.items, chunks(state), i);
                    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (step.f)(range)));
                    if ran.is_err() {
                        self.poisoned.store(true, Ordering::Release);
                    }
                }
                seen = generation;
            }
            MEMBER.with(|m| m.set(was_member));
        }

        /// Helpers counted in the team (queued or running).
        #[cfg(test)]
        pub(super) fn enlisted(&self) -> usize {
            self.enlisted.load(Ordering::SeqCst)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every index of many steps, of every size, is written exactly once, through both splitters.
    #[test]
    fn a_team_runs_every_chunk_of_every_step_once() {
        let sizes = [1usize, 2, 3, 7, 8, 9, 64, 1000, 4099];
        let workers = std::sync::Mutex::new(std::collections::HashSet::new());
        let total = with_team(|| {
            if threads() > 1 {
                // A first step whose first chunk waits (up to 20 s: other tests may hold the pool)
                // until another thread has taken a chunk, so the helpers are shown to take part.
                let start = std::time::Instant::now();
                for_each_chunk(8, MIN_PARALLEL_WORK, |range| {
                    workers.lock().unwrap().insert(std::thread::current().id());
                    while range.start == 0 && workers.lock().unwrap().len() < 2 && start.elapsed().as_secs() < 20 {
                        std::hint::spin_loop();
                    }
                });
            }
            let mut total = 0;
            for round in 0..300 {
                let n = sizes[round % sizes.len()];
                let mut hits = vec![0u32; n];
                let out = DisjointWrites::new(&mut hits);
                for_each_chunk(n, MIN_PARALLEL_WORK, |range| {
                    workers.lock().unwrap().insert(std::thread::current().id());
                    for i in range {
                        // SAFETY: each index belongs to one chunk.
                        unsafe { *out.at(i) += 1 };
                    }
                });
                assert!(hits.iter().all(|&h| h == 1), "step {round} of {n} items: {hits:?}");
                let mut rows = vec![0.0f32; n * 64];
                for_each_row_block(&mut rows, 64, |first, block| {
                    for (r, row) in block.chunks_exact_mut(64).enumerate() {
                        row.fill((first + r) as f32 + 1.0);
                    }
                });
                assert!(rows.chunks_exact(64).enumerate().all(|(r, row)| row.iter().all(|&v| v == r as f32 + 1.0)));
                total += n;
            }
            total
        });
        assert_eq!(total, (0..300).map(|r| sizes[r % sizes.len()]).sum::<usize>());
        if threads() > 1 {
            assert!(workers.into_inner().unwrap().len() > 1, "the helpers took no chunk");
        }
    }

    /// A helper whose next step does not come soon goes back to the pool (where rayon puts it to
    /// sleep) instead of spinning or waiting in the team, and the next step enlists helpers
    /// again: after the first step the team counts no helper, and the second step is shared.
    /// (The CPU that threads waiting for steps use: tests/threads_past_cores.rs, one test in its
    /// process.) Waits are up to 20 s: other tests may hold the pool.
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn helpers_go_back_to_the_pool_between_steps_far_apart_and_come_again() {
        if threads() < 2 {
            return;
        }
        let step = |workers: &std::sync::Mutex<std::collections::HashSet<std::thread::ThreadId>>| {
            let start = std::time::Instant::now();
            for_each_chunk(64, MIN_PARALLEL_WORK, |range| {
                workers.lock().unwrap().insert(std::thread::current().id());
                while range.start == 0 && workers.lock().unwrap().len() < 2 && start.elapsed().as_secs() < 20 {
                    std::hint::spin_loop();
                }
            })
        };
        let (first, second) = (Default::default(), Default::default());
        with_team(|| {
            let team::Role::Leader(team) = team::role() else { panic!("no team on {} threads", threads()) };
            step(&first);
            let start = std::time::Instant::now();
            while team.enlisted() > 0 && start.elapsed().as_secs() < 20 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            assert_eq!(team.enlisted(), 0, "helpers still in the team {:?} after its last step", start.elapsed());
            step(&second);
        });
        for (name, workers) in [("first", first), ("second", second)] {
            assert!(workers.into_inner().unwrap().len() > 1, "the {name} step ran on the leader alone");
        }
    }

    /// candle's own rayon work (candle-nn's LayerNorm, from the leader of a team) while every
    /// pool thread is a helper of some team: the helpers go back to the pool, which runs it. With
    /// helpers that kept their pool threads until their team's end this hung for ever (a
    /// forward pass on candle: tests/integration/engines.rs).
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn rayon_work_from_leaders_of_teams_holding_every_pool_thread_finishes() {
        use std::sync::{mpsc, Arc, Barrier};
        let callers = threads().max(2);
        let barrier = Arc::new(Barrier::new(callers));
        let (done, finished) = mpsc::channel();
        for _ in 0..callers {
            let (barrier, done) = (barrier.clone(), done.clone());
            std::thread::spawn(move || {
                let sum = with_team(|| {
                    for_each_chunk(64, MIN_PARALLEL_WORK, |_| std::thread::sleep(std::time::Duration::from_micros(200)));
                    barrier.wait();
                    use rayon::prelude::*;
                    (0..10_000u32).into_par_iter().with_min_len(16).map(u64::from).sum::<u64>()
                });
                let _ = done.send(sum);
            });
        }
        for caller in 0..callers {
            let sum = finished.recv_timeout(std::time::Duration::from_secs(60)).unwrap_or_else(|_| {
                panic!("{} of {callers} leaders' rayon work did not finish in 60 s (deadlock)", callers - caller)
            });
            assert_eq!(sum, 10_000 * 9_999 / 2);
        }
    }

    #[test]
    fn a_panicking_chunk_reaches_the_caller_and_the_pool_still_works() {
        let caught = std::panic::catch_unwind(|| {
            with_team(|| for_each_chunk(64, MIN_PARALLEL_WORK, |range| assert!(!range.contains(&40), "chunk with 40")))
        });
        assert!(caught.is_err());
        let sum = std::sync::atomic::AtomicUsize::new(0);
        with_team(|| for_each_chunk(64, MIN_PARALLEL_WORK, |range| {
            sum.fetch_add(range.len(), std::sync::atomic::Ordering::Relaxed);
        }));
        assert_eq!(sum.into_inner(), 64);
    }
}
