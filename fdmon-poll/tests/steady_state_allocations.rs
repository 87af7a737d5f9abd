//! A steady-state iteration allocates nothing on the heap: fd dispatch,
//! bottom halves, timers, busy polling and remote scheduling of a bottom
//! half, on the poll monitor. Counted by a global allocator, per thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aio_core::{AioContext, ContextBuilder, EventNotifier, FdHandler, ManualClock, PollParams};
use fdmon_poll::PollMonitor;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// only addition is a thread-local counter that needs no allocation itself
// (const-initialised `Cell`).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

/// Allocations made by 1000 runs of `step`, after 100 to warm up.
fn allocations_in(mut step: impl FnMut()) -> u64 {
    for _ in 0..100 {
        step();
    }
    let before = allocations();
    for _ in 0..1000 {
        step();
    }
    allocations() - before
}

#[test]
fn steady_state_iterations_do_not_allocate() {
    let ctx = AioContext::with_monitor(Box::new(PollMonitor::new())).unwrap();
    let idle: Vec<EventNotifier> = (0..16).map(|_| EventNotifier::new().unwrap()).collect();
    for n in &idle {
        ctx.set_fd_handler(n, Some(FdHandler::new().on_read(|_| {})))
            .unwrap();
    }

    let active = Rc::new(EventNotifier::new().unwrap());
    let a = Rc::clone(&active);
    ctx.set_fd_handler(
        &*active,
        Some(FdHandler::new().on_read(move |_| {
            a.test_and_clear().unwrap();
        })),
    )
    .unwrap();
    let fd_dispatch = allocations_in(|| {
        active.set().unwrap();
        assert!(ctx.poll(false).unwrap());
    });
    assert_eq!(fd_dispatch, 0, "fd dispatch allocated");

    let bh = ctx.bh(|_| {});
    let bottom_half = allocations_in(|| {
        bh.schedule();
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(bottom_half, 0, "a reused bottom half allocated");

    let timer = ctx.timer(|_| {});
    let timers = allocations_in(|| {
        timer.arm_in(Duration::ZERO);
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(timers, 0, "re-arming a timer allocated");

    let remote_bh = bh.remote();
    let remote = allocations_in(|| {
        remote_bh.schedule().unwrap();
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(
        remote, 0,
        "a bottom half scheduled through RemoteBh allocated"
    );
}

#[test]
fn busy_polling_does_not_allocate() {
    // On a manual clock, so that a slow iteration (a loaded machine, a
    // sanitizer) cannot reset the poll time and leave the loop waiting for
    // work that only the poll callback can see.
    let clock = ManualClock::new();
    clock.auto_advance(std::time::Duration::from_nanos(100));
    let ctx = ContextBuilder::new(Box::new(PollMonitor::new()))
        .clock(clock)
        .build()
        .unwrap();
    ctx.set_poll_params(PollParams::IOTHREAD);
    let kick = Rc::new(EventNotifier::new().unwrap());
    let work = Rc::new(Cell::new(false));
    let (k, w, check) = (Rc::clone(&kick), Rc::clone(&work), Rc::clone(&work));
    let handler = FdHandler::new()
        .on_read(move |_| {
            k.test_and_clear().unwrap();
        })
        .on_poll(move || check.get(), move |_| w.set(false))
        .on_poll_begin(|| {})
        .on_poll_end(|| {});
    ctx.set_fd_handler(&*kick, Some(handler)).unwrap();
    kick.set().unwrap();
    ctx.poll(true).unwrap(); // on the polled list from now on
    let polled = allocations_in(|| {
        work.set(true);
        assert!(ctx.poll(true).unwrap());
    });
    // Work was always found by polling: no iteration but the first blocked.
    let stats = ctx.stats();
    assert_eq!(stats.blocking_waits, 1, "{stats:?}");
    assert_eq!(stats.poll_hits, 1100, "{stats:?}");
    assert_eq!(polled, 0, "busy polling allocated");
}
