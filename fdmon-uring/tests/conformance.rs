//! The conformance suite on the io_uring monitor: the default setup, and
//! each task-running mode.

mod default {
    aio_core::conformance_tests!(aio_core::testing::Harness::new(|| Ok(Box::new(
        fdmon_uring::UringMonitor::new()?
    ))));
}

macro_rules! mode {
    ($name:ident, $mode:ident) => {
        mod $name {
            aio_core::conformance_tests!(aio_core::testing::Harness::new(|| Ok(Box::new(
                fdmon_uring::UringMonitor::with_options(
                    fdmon_uring::UringOptions::default().task_run(fdmon_uring::TaskRun::$mode)
                )?
            ))));
        }
    };
}

mode!(interrupt, Interrupt);
mode!(cooperative, Cooperative);
mode!(cooperative_flag, CooperativeFlag);
mode!(deferred, Deferred);
mode!(deferred_flag, DeferredFlag);
