//! A steady-state iteration allocates nothing on the heap: fd dispatch,
//! bottom halves, timers, busy polling and remote scheduling of a bottom
//! half, on the io_uring monitor in every task-running mode. Counted by a
//! global allocator, per thread.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::{CountingAlloc, allocations_in};
use aio_core::{AioContext, EventNotifier, FdHandler, PollParams};
use fdmon_uring::{TaskRun, UringMonitor, UringOptions};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

fn context(mode: TaskRun) -> AioContext {
    let monitor = UringMonitor::with_options(UringOptions::default().task_run(mode)).unwrap();
    AioContext::with_monitor(Box::new(monitor)).unwrap()
}

/// A context on a manual clock, so that a slow iteration (a loaded
/// machine, a sanitizer) cannot reset a poll time and leave the loop
/// waiting for work that only a poll callback can see.
fn context_on_manual_clock(mode: TaskRun) -> AioContext {
    let monitor = UringMonitor::with_options(UringOptions::default().task_run(mode)).unwrap();
    let clock = aio_core::ManualClock::new();
    clock.auto_advance(std::time::Duration::from_nanos(100));
    aio_core::ContextBuilder::new(Box::new(monitor))
        .clock(clock)
        .build()
        .unwrap()
}

#[test]
fn steady_state_iterations_do_not_allocate() {
    for mode in TaskRun::ALL {
        let ctx = context(mode);
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
        assert_eq!(fd_dispatch, 0, "{mode:?}: fd dispatch allocated");
        let blocking_fd_dispatch = allocations_in(|| {
            active.set().unwrap();
            assert!(ctx.poll(true).unwrap());
        });
        assert_eq!(
            blocking_fd_dispatch, 0,
            "{mode:?}: fd dispatch by a blocking poll allocated"
        );

        let bh = ctx.bh(|_| {});
        let bottom_half = allocations_in(|| {
            bh.schedule();
            assert!(ctx.poll(true).unwrap());
        });
        assert_eq!(bottom_half, 0, "{mode:?}: a reused bottom half allocated");

        let timer = ctx.timer(|_| {});
        let timers = allocations_in(|| {
            timer.arm_in(Duration::ZERO);
            assert!(ctx.poll(true).unwrap());
        });
        assert_eq!(timers, 0, "{mode:?}: re-arming a timer allocated");

        let remote_bh = bh.remote();
        let remote = allocations_in(|| {
            remote_bh.schedule().unwrap();
            assert!(ctx.poll(true).unwrap());
        });
        assert_eq!(
            remote, 0,
            "{mode:?}: a bottom half scheduled through RemoteBh allocated"
        );
    }
}

#[test]
fn busy_polling_does_not_allocate() {
    for mode in TaskRun::ALL {
        let ctx = context_on_manual_clock(mode);
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
        // A plain handler too: the window peeks at the monitor for it.
        let plain = Rc::new(EventNotifier::new().unwrap());
        let p = Rc::clone(&plain);
        ctx.set_fd_handler(
            &*plain,
            Some(FdHandler::new().on_read(move |_| {
                p.test_and_clear().unwrap();
            })),
        )
        .unwrap();
        kick.set().unwrap();
        plain.set().unwrap();
        ctx.poll(true).unwrap(); // both on the polled list from now on
        let polled = allocations_in(|| {
            work.set(true);
            assert!(ctx.poll(true).unwrap());
        });
        assert_eq!(polled, 0, "{mode:?}: busy polling allocated");
        let plain_polled = allocations_in(|| {
            plain.set().unwrap();
            assert!(ctx.poll(true).unwrap());
        });
        assert_eq!(plain_polled, 0, "{mode:?}: serving a plain fd allocated");
        let stats = ctx.stats();
        assert!(stats.poll_hits > 0, "{mode:?}: {stats:?}");
    }
}
