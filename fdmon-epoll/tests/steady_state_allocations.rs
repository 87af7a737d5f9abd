//! A steady-state iteration allocates nothing on the heap on the epoll
//! monitor, on both of its wait paths: fd dispatch, bottom halves, timers
//! (a wait that times out included), remote scheduling and busy polling
//! (the scenarios are the testing feature's). Counted by a global
//! allocator, per thread.

use aio_core::testing::{
    CountingAlloc, assert_busy_polling_does_not_allocate, assert_iterations_do_not_allocate,
};
use fdmon_epoll::EpollMonitor;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

#[test]
fn on_epoll_pwait2() {
    assert_iterations_do_not_allocate(Box::new(EpollMonitor::new().unwrap()));
    assert_busy_polling_does_not_allocate(Box::new(EpollMonitor::new().unwrap()));
}

#[test]
fn on_the_ppoll_fallback() {
    let monitor = || EpollMonitor::new().unwrap().force_ppoll_fallback();
    assert_iterations_do_not_allocate(Box::new(monitor()));
    assert_busy_polling_does_not_allocate(Box::new(monitor()));
}
