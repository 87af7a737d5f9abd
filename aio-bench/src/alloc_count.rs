//! A counting global allocator: the system allocator plus a process-wide
//! count of allocation calls, so a benchmark can say how many heap
//! allocations one iteration makes in steady state.
//!
//! The binary installs it with `#[global_allocator]`; a library user that
//! does not sees [`is_installed`] return `false`, and the reports say so
//! instead of printing a count of zero.
//!
//! Why not `aio_core::testing::CountingAlloc`: that one counts per thread,
//! because libtest runs a test binary's tests in parallel and a test must
//! see only its own allocations. A benchmark runs one scenario at a time,
//! and a scenario's allocations happen on several threads (a ping-pong
//! peer, the thread pool's workers, a remote notifier) that a per-thread
//! count would miss; it also needs no live-block count, and the bench
//! binary does not build aio-core's `testing` feature.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

/// Allocation calls (`alloc`, `alloc_zeroed`, `realloc`) since the start of
/// the process, on every thread.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

/// The system allocator, counting allocation calls. Frees are not counted:
/// what matters is how often the hot path asks for memory.
#[derive(Debug, Default)]
pub struct CountingAlloc;

impl CountingAlloc {
    /// The allocator, for a `#[global_allocator]` static.
    pub const fn new() -> CountingAlloc {
        CountingAlloc
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged, so `System`'s guarantees are ours; the counter is a relaxed
// atomic and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as is; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as is; the caller upholds `alloc_zeroed`'s
        // contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded as is; `ptr` came from this allocator, which is
        // `System`, and the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is; `ptr` came from this allocator, which is
        // `System`, with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Allocation calls so far, on every thread.
pub fn allocations() -> u64 {
    ALLOCATIONS.load(Ordering::Relaxed)
}

/// Whether [`CountingAlloc`] is the global allocator of this process: a
/// small allocation must move the count.
pub fn is_installed() -> bool {
    let before = allocations();
    drop(black_box(Box::new(black_box(0u64))));
    allocations() != before
}
