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

/// A ring of 4 entries whose kernel refuses every third `io_uring_enter`
/// that would submit (`ENOMEM`, `EBUSY`, `EAGAIN`, `EINTR`, injected:
/// nothing is submitted, nothing waited for), whether it frees room in the
/// full submission queue (the operation that needed the room is not
/// queued, and the core sends it again at the next iteration) or waits
/// (the wait ends, its requests still queued, and the context goes on
/// rather than falling back). Thousands of reads, random writes read back,
/// and a socket pair's transfers still complete, each exactly once, with
/// the right bytes.
mod refused_submits {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use aio_core::AioContext;
    use aio_core::testing::{OpsHarness, suite};
    use fdmon_uring::{UringMonitor, UringOptions};

    fn check(errno: i32) {
        let refused: Rc<RefCell<Vec<Arc<AtomicU64>>>> = Rc::default();
        let r = Rc::clone(&refused);
        let h = OpsHarness::new("io_uring, 4 entries, refused submits", move || {
            let mut monitor = UringMonitor::with_options(UringOptions::default().entries(4))?;
            r.borrow_mut().push(monitor.refuse_submits_every(3, errno));
            AioContext::with_monitor(Box::new(monitor))
        })
        .stops_running_ops();
        suite::ops::thousands_in_flight_complete_once_each(&h);
        suite::ops::written_data_reads_back_equal(&h);
        suite::sockets::a_socket_pair_sends_and_receives(&h);
        let counts: Vec<u64> = refused
            .borrow()
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert!(
            counts[0] > 100,
            "errno {errno}: the 2000 reads met refused submissions: {counts:?}"
        );
    }

    #[test]
    fn enomem() {
        check(libc::ENOMEM);
    }

    #[test]
    fn ebusy() {
        check(libc::EBUSY);
    }

    #[test]
    fn eagain() {
        check(libc::EAGAIN);
    }

    #[test]
    fn eintr() {
        check(libc::EINTR);
    }
}
