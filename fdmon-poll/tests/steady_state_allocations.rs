//! A steady-state iteration allocates nothing on the heap: fd dispatch,
//! bottom halves, timers, busy polling and remote scheduling of a bottom
//! half, on the poll monitor. Counted by a global allocator, per thread.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::{CountingAlloc, allocations_in};
use aio_core::{AioContext, ContextBuilder, EventNotifier, FdHandler, ManualClock, PollParams};
use fdmon_poll::PollMonitor;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

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
