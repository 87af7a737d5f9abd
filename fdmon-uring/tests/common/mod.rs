//! Helpers shared by the integration tests: monitors and contexts in each
//! task-running mode, and a monitor whose kernel entries the test can read.

#![allow(dead_code, unreachable_pub)]

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, PoisonError};

use aio_core::testing::TestMonitor;
use aio_core::{AioContext, FdMonitor, Pending};
use fdmon_uring::{TaskRun, UringMonitor, UringOptions};

/// A monitor in `mode`.
pub fn monitor(mode: TaskRun) -> UringMonitor {
    UringMonitor::with_options(UringOptions::default().task_run(mode))
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"))
}

/// A context on a monitor in `mode`.
pub fn context(mode: TaskRun) -> AioContext {
    AioContext::with_monitor(Box::new(monitor(mode))).unwrap()
}

/// What a context's monitor did, copied out after each of its calls (the
/// context holds the monitor; a test reads this instead).
#[derive(Clone, Debug, Default)]
pub struct Seen {
    enters: Rc<Cell<u64>>,
    shown: Rc<Cell<Option<Pending>>>,
}

impl Seen {
    /// The monitor's `io_uring_enter` calls so far.
    pub fn enters(&self) -> u64 {
        self.enters.get()
    }

    /// What the monitor showed after its last wait.
    pub fn shown(&self) -> Option<Pending> {
        self.shown.get()
    }
}

/// A monitor in `mode` whose kernel entries, and what it shows after each
/// wait, the test can read in the [`Seen`].
pub fn watched(mode: TaskRun) -> (TestMonitor<UringMonitor>, Seen) {
    let seen = Seen::default();
    let (after_update, after_wait) = (seen.clone(), seen.clone());
    let monitor = TestMonitor::new(monitor(mode))
        .on_update(move |inner, fd, old, new| {
            let result = inner.update(fd, old, new);
            after_update.enters.set(inner.enters());
            result
        })
        .on_wait(move |inner, events, timeout| {
            let result = inner.wait(events, timeout);
            after_wait.enters.set(inner.enters());
            after_wait.shown.set(Some(inner.pending()));
            result
        });
    (monitor, seen)
}

/// A context on a [`watched`] monitor in `mode`.
pub fn watched_context(mode: TaskRun) -> (AioContext, Seen) {
    let (monitor, seen) = watched(mode);
    (AioContext::with_monitor(Box::new(monitor)).unwrap(), seen)
}

/// Tests that close an fd and rely on what its number names next take
/// this lock, so that no other test of their file opens an fd meanwhile.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}
