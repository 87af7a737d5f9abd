//! A steady-state iteration allocates nothing on the heap: fd dispatch,
//! bottom halves, timers (a blocking wait with a nanosecond timeout
//! included), on both wait paths of the epoll monitor. Counted by a global
//! allocator, per thread.

use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::{CountingAlloc, allocations_in, allocations_in_runs};
use aio_core::{AioContext, EventNotifier, FdHandler};
use fdmon_epoll::EpollMonitor;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

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

    let fd_dispatch = allocations_in(|| {
        active.set().unwrap();
        assert!(ctx.poll(false).unwrap());
    });
    assert_eq!(fd_dispatch, 0, "fd dispatch allocated");

    let blocking_fd_dispatch = allocations_in(|| {
        active.set().unwrap();
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(
        blocking_fd_dispatch, 0,
        "a blocking wait for an fd allocated"
    );

    let bh = ctx.bh(|_| {});
    let bottom_half = allocations_in(|| {
        bh.schedule();
        assert!(ctx.poll(true).unwrap());
    });
    assert_eq!(bottom_half, 0, "a reused bottom half allocated");

    let timer = ctx.timer(|_| {});
    let timed_out = allocations_in_runs(100, || {
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
