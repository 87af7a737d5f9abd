//! The conformance suite on the epoll monitor, on both of its wait paths.

/// Waits with `epoll_pwait2` (the kernel has it from 5.11).
mod pwait2 {
    aio_core::conformance_tests!(aio_core::testing::Harness::new(|| Ok(Box::new(
        fdmon_epoll::EpollMonitor::new()?
    ))));
}

/// Waits with `ppoll` on the epoll fd, then `epoll_wait` with no timeout.
mod ppoll_fallback {
    aio_core::conformance_tests!(aio_core::testing::Harness::new(|| Ok(Box::new(
        fdmon_epoll::EpollMonitor::new()?.force_ppoll_fallback()
    ))));
}
