//! A steady-state iteration allocates nothing on the heap on the poll
//! monitor: fd dispatch, bottom halves, timers, remote scheduling and busy
//! polling (the scenarios are the testing feature's). Counted by a global
//! allocator, per thread.

use aio_core::testing::{
    CountingAlloc, assert_busy_polling_does_not_allocate, assert_iterations_do_not_allocate,
};
use fdmon_poll::PollMonitor;

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

#[test]
fn steady_state_iterations_do_not_allocate() {
    assert_iterations_do_not_allocate(Box::new(PollMonitor::new()));
}

#[test]
fn busy_polling_does_not_allocate() {
    assert_busy_polling_does_not_allocate(Box::new(PollMonitor::new()));
}
