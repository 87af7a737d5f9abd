//! A steady-state iteration allocates nothing on the heap on the io_uring
//! monitor, in every task-running mode: fd dispatch, bottom halves, timers,
//! remote scheduling and busy polling (the scenarios are the testing
//! feature's). Counted by a global allocator, per thread.

use aio_core::testing::{
    CountingAlloc, assert_busy_polling_does_not_allocate, assert_iterations_do_not_allocate,
    assert_operations_do_not_allocate,
};
use fdmon_uring::{TaskRun, UringMonitor, UringOptions};

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc::new();

fn monitor(mode: TaskRun) -> Box<UringMonitor> {
    Box::new(UringMonitor::with_options(UringOptions::default().task_run(mode)).unwrap())
}

#[test]
fn steady_state_iterations_do_not_allocate() {
    for mode in TaskRun::ALL {
        assert_iterations_do_not_allocate(monitor(mode));
    }
}

#[test]
fn busy_polling_does_not_allocate() {
    for mode in TaskRun::ALL {
        assert_busy_polling_does_not_allocate(monitor(mode));
    }
}

#[test]
fn operations_on_the_ring_do_not_allocate() {
    for mode in TaskRun::ALL {
        let ctx = aio_core::AioContext::with_monitor(monitor(mode)).unwrap();
        assert_operations_do_not_allocate(&ctx);
    }
}

#[test]
fn socket_operations_on_the_ring_do_not_allocate() {
    for mode in TaskRun::ALL {
        let ctx = aio_core::AioContext::with_monitor(monitor(mode)).unwrap();
        aio_core::testing::assert_socket_operations_do_not_allocate(&ctx);
    }
}
