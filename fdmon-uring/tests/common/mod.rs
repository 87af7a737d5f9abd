//! Helpers shared by the integration tests: monitors and contexts in each
//! task-running mode, and a monitor wrapper that counts kernel entries.

#![allow(dead_code, unreachable_pub)]

use std::cell::Cell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aio_core::{AioContext, FdMonitor, Pending, ReadyEvent, Registration};
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

/// A context on a monitor in `mode` whose kernel entries are counted into
/// the returned cell after every monitor call.
pub fn counted_context(mode: TaskRun) -> (AioContext, Rc<Cell<u64>>) {
    let enters = Rc::new(Cell::new(0));
    let monitor = Counted {
        inner: monitor(mode),
        enters: Rc::clone(&enters),
    };
    (AioContext::with_monitor(Box::new(monitor)).unwrap(), enters)
}

struct Counted {
    inner: UringMonitor,
    enters: Rc<Cell<u64>>,
}

impl FdMonitor for Counted {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn update(
        &mut self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        let result = self.inner.update(fd, old, new);
        self.enters.set(self.inner.enters());
        result
    }

    fn wait(&mut self, events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        let result = self.inner.wait(events, timeout);
        self.enters.set(self.inner.enters());
        result
    }

    fn pending(&mut self) -> Pending {
        self.inner.pending()
    }
}

/// Tests that close an fd and rely on what its number names next take
/// this lock, so that no other test of their file opens an fd meanwhile.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}
