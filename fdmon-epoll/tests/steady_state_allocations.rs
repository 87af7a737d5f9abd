//! A steady-state iteration allocates nothing on the heap: fd dispatch,
//! bottom halves, timers (a blocking wait with a nanosecond timeout
//! included), on both wait paths of the epoll monitor. Counted by a global
//! allocator, per thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aio_core::{AioContext, EventNotifier, FdHandler};
use fdmon_epoll::EpollMonitor;

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

/// Allocations made by `runs` runs of `step`, after 100 to warm up.
fn allocations_in(runs: u32, mut step: impl FnMut()) -> u64 {
    for _ in 0..100 {
        step();
    }
    let before = allocations();
    for _ in 0..runs {
        step();
    }
    allocations() - before
}

fn steady_state_iterations_do_not_allocate(monitor: EpollMonitor) {
    let ctx = AioContext::with_monitor(Box::new(monitor)).unwrap();
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

    let fd_dispatch = allocations_in(1000, || {
        active.set().unwrap();
        assert!(ctx.poll(false).unwrap());
    });
    assert_eq!(fd_dispatch, 0, "fd dispatch allocated");

    let blocking_fd_dispatch = allocations_in(1000, || {
        active.set().unwrap();
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(
        blocking_fd_dispatch, 0,
        "a blocking wait for an fd allocated"
    );

    let bh = ctx.bh(|_| {});
    let bottom_half = allocations_in(1000, || {
        bh.schedule();
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(bottom_half, 0, "a reused bottom half allocated");

    let timer = ctx.timer(|_| {});
    let timed_out = allocations_in(100, || {
        timer.arm_in(Duration::from_micros(20));
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(timed_out, 0, "a wait that timed out allocated");
}

#[test]
fn on_epoll_pwait2() {
    steady_state_iterations_do_not_allocate(EpollMonitor::new().unwrap());
}

#[test]
fn on_the_ppoll_fallback() {
    steady_state_iterations_do_not_allocate(EpollMonitor::new().unwrap().force_ppoll_fallback());
}
