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
