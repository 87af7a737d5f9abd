//! The conformance suite on the poll monitor.

aio_core::conformance_tests!(aio_core::testing::Harness::new(|| Ok(Box::new(
    fdmon_poll::PollMonitor::new()
))));
