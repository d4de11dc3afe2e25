//! Allocations that fail in the browser. A wasm32 memory has a maximum (4 GiB; the
//! multi-threaded build's shared memory, 1 GiB: scripts/build_wasm.sh), and an allocation past it
//! aborts, which traps the instance: JavaScript sees only `RuntimeError: unreachable`. The
//! allocator here is the system's, recording the size of an allocation it could not make, which
//! the worker takes after the trap (`takeFailedAllocation`) to say the model ran out of memory.
//! It also counts the live heap bytes and their peak ([`HeapCount`]): being the one allocator of
//! every wasm build, it is what the memory-bounding tests read in the browser (`wasm-pack test`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use wasm_bindgen::prelude::*;

/// Bytes of the last allocation that failed, until taken; 0 for none.
static FAILED: AtomicUsize = AtomicUsize::new(0);
/// Heap bytes live now, and the most live at once since [`HeapCount::reset_peak`].
static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The heap this allocator has handed out and not taken back.
pub struct HeapCount;

impl HeapCount {
    /// Starts a new peak at the bytes live now, and returns them.
    pub fn reset_peak() -> usize {
        let live = LIVE.load(Ordering::Relaxed);
        PEAK.store(live, Ordering::Relaxed);
        live
    }

    /// The most bytes live at once since [`HeapCount::reset_peak`].
    pub fn peak() -> usize {
        PEAK.load(Ordering::Relaxed)
    }
}

fn counted(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

/// The system's allocator, recording what it refuses.
struct Recording;

impl Recording {
    fn checked(ptr: *mut u8, bytes: usize) -> *mut u8 {
        if ptr.is_null() {
            FAILED.store(bytes, Ordering::Relaxed);
        } else {
            counted(bytes);
        }
        ptr
    }
}

// SAFETY: every call is passed on to the system's allocator unchanged; only counters are added.
unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::checked(System.alloc(layout), layout.size())
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::checked(System.alloc_zeroed(layout), layout.size())
    }

    /// Counted as a new block beside the old one, as a moving realloc holds both.
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = Self::checked(System.realloc(ptr, layout, new_size), new_size);
        if !moved.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        }
        moved
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// Bytes of the allocation that failed since the last call (the worker asks after a trap, and
/// before each request so that a refusal the core handled is not taken for the trap's cause), or
/// `undefined`.
#[wasm_bindgen(js_name = takeFailedAllocation)]
pub fn take_failed_allocation() -> Option<f64> {
    match FAILED.swap(0, Ordering::Relaxed) {
        0 => None,
        bytes => Some(bytes as f64),
    }
}
