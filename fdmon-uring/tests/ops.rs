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
