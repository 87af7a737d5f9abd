//! The operations suite on the ring: reads, writes and syncs on the
//! monitor's own ring, in the default task-running mode and in the one that
//! interrupts.

mod default_mode {
    use aio_core::AioContext;
    use aio_core::testing::OpsHarness;
    use fdmon_uring::UringMonitor;

    aio_core::ops_conformance_tests!(
        OpsHarness::new("io_uring", || AioContext::with_monitor(Box::new(
            UringMonitor::new()?
        )))
        .stops_running_ops()
    );
}

mod interrupt_mode {
    use aio_core::AioContext;
    use aio_core::testing::OpsHarness;
    use fdmon_uring::{TaskRun, UringMonitor, UringOptions};

    aio_core::ops_conformance_tests!(
        OpsHarness::new("io_uring interrupt", || {
            let options = UringOptions::default().task_run(TaskRun::Interrupt);
            AioContext::with_monitor(Box::new(UringMonitor::with_options(options)?))
        })
        .stops_running_ops()
    );
}

/// A ring of 4 submission entries (8 completions) under thousands of
/// operations: the submission queue fills (it is submitted and the push
/// retried) and the completion queue overflows (the kernel keeps the rest,
/// NODROP, and the monitor flushes them): every operation still completes
/// exactly once with its data.
mod tiny_ring {
    use aio_core::AioContext;
    use aio_core::testing::{OpsHarness, suite};
    use fdmon_uring::{UringMonitor, UringOptions};

    fn harness() -> OpsHarness {
        OpsHarness::new("io_uring, 4 entries", || {
            let options = UringOptions::default().entries(4);
            AioContext::with_monitor(Box::new(UringMonitor::with_options(options)?))
        })
        .stops_running_ops()
    }

    #[test]
    fn a_full_submission_queue_and_an_overflowing_completion_queue_lose_nothing() {
        let h = harness();
        suite::ops::thousands_in_flight_complete_once_each(&h);
        suite::ops::written_data_reads_back_equal(&h);
    }
}

/// A read in flight while the loop busy-polls is picked up by polling: the
/// window hands it to the kernel, sees its completion and ends, with no
/// blocking wait (on a manual clock, so the window cannot time out first).
#[test]
fn an_operation_completed_in_the_poll_window_ends_it_without_a_blocking_wait() {
    use std::cell::Cell;
    use std::io::Write;
    use std::rc::Rc;
    use std::time::Duration;

    use aio_core::{ContextBuilder, EventNotifier, FdHandler, ManualClock, PollParams};
    use fdmon_uring::UringMonitor;

    let clock = ManualClock::new();
    clock.auto_advance(Duration::from_nanos(100));
    let ctx = ContextBuilder::new(Box::new(UringMonitor::new().unwrap()))
        .clock(clock)
        .poll_params(PollParams {
            max_ns: 10_000_000_000,
            grow: 1_000_000,
            shrink: 0,
        })
        .build()
        .unwrap();
    // A handler on the polled list with a long poll time, so the loop
    // busy-polls before it would block.
    let kick = Rc::new(EventNotifier::new().unwrap());
    let k = Rc::clone(&kick);
    ctx.set_fd_handler(
        &*kick,
        Some(FdHandler::new().on_read(move |_| {
            k.test_and_clear().unwrap();
        })),
    )
    .unwrap();
    kick.set().unwrap();
    ctx.poll(true).unwrap();
    let path = std::env::temp_dir().join(format!("aio-ops-window-{}", std::process::id()));
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(&[5; 4096]).unwrap();
    let file = std::fs::File::open(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    // Grow the poll time: one iteration that blocked a while.
    let timer = ctx.timer(|_| {});
    timer.arm_in(Duration::from_millis(1));
    ctx.poll(true).unwrap();

    let done = Rc::new(Cell::new(false));
    let d = Rc::clone(&done);
    ctx.read_at(&file, Vec::with_capacity(4096), 0, move |_, n, _| {
        assert_eq!(n.unwrap(), 4096);
        d.set(true);
    });
    let before = ctx.stats();
    let _dog = aio_core::testing::Watchdog::arm("the read, by polling", Duration::from_secs(60));
    while !done.get() {
        ctx.poll(true).unwrap();
    }
    let after = ctx.stats();
    assert_eq!(
        after.blocking_waits, before.blocking_waits,
        "no blocking wait: {after:?}"
    );
    assert!(
        after.poll_hits > before.poll_hits,
        "found by polling: {after:?}"
    );
}
