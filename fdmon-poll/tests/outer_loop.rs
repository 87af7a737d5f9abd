//! The poll monitor driven by another event loop (prepare / loop fd / check
//! / dispatch): its loop fd is an epoll instance kept in step with it.

aio_core::outer_loop_tests!(
    aio_core::testing::Harness::new(|| Ok(Box::new(fdmon_poll::PollMonitor::new())))
        .driven_by_outer_loop()
);
