//! The epoll monitor driven by another event loop (prepare / loop fd /
//! check / dispatch): its loop fd is the epoll fd.

aio_core::outer_loop_tests!(
    aio_core::testing::Harness::new(|| Ok(Box::new(fdmon_epoll::EpollMonitor::new()?)))
        .driven_by_outer_loop()
);
