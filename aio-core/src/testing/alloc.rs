//! A counting global allocator, for tests that check how much the loop
//! allocates: that a steady-state iteration allocates nothing, or that
//! memory stays flat over a million cycles.
//!
//! A test binary installs [`CountingAlloc`] as its global allocator:
//!
//! ```
//! use aio_core::testing::{CountingAlloc, Harness, allocations_in, live_growth_in};
//!
//! #[global_allocator]
//! static GLOBAL: CountingAlloc = CountingAlloc::new();
//!
//! # fn main() {
//! let f = Harness::sim().fixture();
//! let bh = f.ctx.bh(|_| {});
//! let allocated = allocations_in(|| {
//!     bh.schedule();
//!     f.ctx.poll(false).unwrap();
//! });
//! assert_eq!(allocated, 0, "a reused bottom half allocated");
//!
//! // A step that allocates is caught, and one that keeps what it allocated.
//! assert_eq!(allocations_in(|| drop(std::hint::black_box(vec![0u8; 8]))), 1000);
//! let mut kept = Vec::with_capacity(10);
//! assert_eq!(live_growth_in(0, 10, |i| kept.push(Box::new(i))), 10);
//! # }
//! ```
//!
//! The counts are kept per thread: libtest runs a binary's tests in
//! parallel, and a count shared by all threads would pick up the other
//! tests' allocations. A test therefore measures code that runs on its own
//! thread; an allocation made by another thread is not counted, and a block
//! freed on another thread than the one that allocated it leaves the
//! allocating thread's [live count](thread_live) one too high. (The
//! benchmarks' allocator counts per process instead: a benchmark runs one
//! scenario at a time, on several threads.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;

/// Runs of the step that [`allocations_in`] and [`allocations_in_runs`]
/// make before they start counting, so that caches, free lists and vectors
/// reach their working size first.
pub const WARM_UP_RUNS: usize = 100;

/// Runs of the step that [`allocations_in`] counts over.
pub const COUNTED_RUNS: usize = 1000;

/// A [`GlobalAlloc`] that forwards every call to [`System`] and counts, per
/// thread, the calls that allocate ([`thread_allocations`]) and the blocks
/// allocated and not yet freed ([`thread_live`]).
///
/// The counters are `const`-initialised thread-locals holding `Cell`s with
/// no destructor, so that counting allocates nothing itself; they are
/// reached through `try_with`, so that an allocation made while the thread
/// is being torn down goes uncounted instead of failing.
#[derive(Debug, Default)]
pub struct CountingAlloc {
    _private: (),
}

impl CountingAlloc {
    /// The allocator, for a `#[global_allocator]` static.
    pub const fn new() -> Self {
        CountingAlloc { _private: () }
    }
}

/// This thread's counters.
struct Counts {
    /// Calls to `alloc`, `alloc_zeroed` and `realloc`, failed ones included.
    allocations: Cell<u64>,
    /// Blocks returned by `alloc` and `alloc_zeroed`, minus calls to
    /// `dealloc`.
    live: Cell<i64>,
}

thread_local! {
    static COUNTS: Counts = const {
        Counts { allocations: Cell::new(0), live: Cell::new(0) }
    };
}

/// Adds to this thread's counters. Never allocates, and never panics (an
/// allocator must not unwind).
fn count(allocations: u64, live: i64) {
    let _ = COUNTS.try_with(|counts| {
        counts
            .allocations
            .set(counts.allocations.get().wrapping_add(allocations));
        counts.live.set(counts.live.get().wrapping_add(live));
    });
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// implements `GlobalAlloc` correctly, and returns what `System` returned; so
// blocks come from and go back to `System` with the layouts it was given.
// The only addition is counting in thread-locals, which neither allocates
// (const-initialised `Cell`s without a destructor) nor panics (`try_with`,
// wrapping arithmetic), so it cannot recurse into the allocator or unwind.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract (a layout of non-zero
        // size), which is passed on to `System` as it is.
        let ptr = unsafe { System.alloc(layout) };
        count(1, i64::from(!ptr.is_null()));
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc_zeroed`'s contract (a layout of
        // non-zero size), which is passed on to `System` as it is.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        count(1, i64::from(!ptr.is_null()));
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(0, -1);
        // SAFETY: the caller guarantees that `ptr` was allocated by this
        // allocator with `layout`; every block of this allocator is a block
        // of `System` allocated with the same layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees that `ptr` was allocated by this
        // allocator (so by `System`) with `layout`, and that `new_size` is
        // valid for it; all passed on to `System` as they are.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        // A moved block replaces the old one, and on failure the old one
        // stays: either way, as many blocks are live as before.
        count(1, 0);
        new
    }
}

/// Calls to `alloc`, `alloc_zeroed` and `realloc` (growing or shrinking, and
/// failed ones included) made on this thread so far. Zero on a binary whose
/// global allocator is not [`CountingAlloc`].
pub fn thread_allocations() -> u64 {
    COUNTS.with(|counts| counts.allocations.get())
}

/// Blocks allocated on this thread and not yet freed (on this thread), so
/// far; can be negative if this thread frees blocks made by others. Zero on
/// a binary whose global allocator is not [`CountingAlloc`].
pub fn thread_live() -> i64 {
    COUNTS.with(|counts| counts.live.get())
}

/// Allocations made on this thread by [`COUNTED_RUNS`] runs of `step`,
/// after [`WARM_UP_RUNS`] runs to warm up.
///
/// # Panics
///
/// If the binary's global allocator is not [`CountingAlloc`] (the count
/// would be zero whatever `step` does).
pub fn allocations_in(step: impl FnMut()) -> u64 {
    allocations_in_runs(COUNTED_RUNS, step)
}

/// Allocations made on this thread by `runs` runs of `step`, after
/// [`WARM_UP_RUNS`] runs to warm up; for steps too slow to run
/// [`COUNTED_RUNS`] times.
///
/// # Panics
///
/// If the binary's global allocator is not [`CountingAlloc`].
pub fn allocations_in_runs(runs: usize, mut step: impl FnMut()) -> u64 {
    assert_installed();
    for _ in 0..WARM_UP_RUNS {
        step();
    }
    let before = thread_allocations();
    for _ in 0..runs {
        step();
    }
    thread_allocations().wrapping_sub(before)
}

/// The change in this thread's [live blocks](thread_live) over `runs` runs
/// of `step`, after `warm_up` runs to warm up. `step` is given the number of
/// its run, counting from 0 through the warm-up and on through the counted
/// runs (`warm_up..warm_up + runs`).
///
/// # Panics
///
/// If the binary's global allocator is not [`CountingAlloc`].
pub fn live_growth_in(warm_up: usize, runs: usize, mut step: impl FnMut(usize)) -> i64 {
    assert_installed();
    for i in 0..warm_up {
        step(i);
    }
    let before = thread_live();
    for i in warm_up..warm_up + runs {
        step(i);
    }
    thread_live().wrapping_sub(before)
}

/// Fails the test if [`CountingAlloc`] is not counting this thread's
/// allocations, so that a test binary without the `#[global_allocator]`
/// fails instead of passing on counts that stay zero.
fn assert_installed() {
    let before = thread_allocations();
    // `black_box` keeps the compiler from eliding the allocation.
    drop(black_box(Box::new(0u8)));
    assert_ne!(
        thread_allocations(),
        before,
        "the global allocator is not aio_core::testing::CountingAlloc: add \
         `#[global_allocator] static GLOBAL: CountingAlloc = CountingAlloc::new();` \
         to the test binary"
    );
}
