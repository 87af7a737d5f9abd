//! The io_uring monitor driven by another event loop (prepare / loop fd /
//! check / dispatch): its loop fd is the ring's fd, in the task-running
//! modes whose ring fd wakes pollers; the deferred modes refuse.

use std::io;

use aio_core::testing::Harness;
use fdmon_uring::{TaskRun, UringMonitor, UringOptions};

fn harness(task_run: TaskRun) -> Harness {
    Harness::new(move || {
        let options = UringOptions::default().task_run(task_run);
        Ok(Box::new(UringMonitor::with_options(options)?))
    })
    .driven_by_outer_loop()
}

mod interrupt {
    aio_core::outer_loop_tests!(super::harness(fdmon_uring::TaskRun::Interrupt));
}

mod cooperative {
    aio_core::outer_loop_tests!(super::harness(fdmon_uring::TaskRun::Cooperative));
}

mod cooperative_flag {
    aio_core::outer_loop_tests!(super::harness(fdmon_uring::TaskRun::CooperativeFlag));
}

#[test]
fn deferred_modes_cannot_wake_another_loop() {
    for task_run in [TaskRun::Deferred, TaskRun::DeferredFlag] {
        let monitor =
            UringMonitor::with_options(UringOptions::default().task_run(task_run)).unwrap();
        let ctx = aio_core::ContextBuilder::new(Box::new(monitor))
            .build()
            .unwrap();
        let err = ctx.loop_fd().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported, "{task_run:?}");
        assert!(err.to_string().contains("DEFER_TASKRUN"), "{err}");
    }
}
