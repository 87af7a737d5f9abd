//! Helpers shared by the integration tests: monitors and contexts in each
//! task-running mode, and a context whose monitor the test shares.

#![allow(dead_code, unreachable_pub)]

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aio_core::{AioContext, ContextBuilder, FdMonitor, Pending, ReadyEvent, Registration};
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

/// A context on a monitor in `mode` that the test shares: it can read the
/// monitor's kernel entries, or ask what it shows, between the context's
/// calls (from a callback, too: the context does not hold the monitor
/// while callbacks run).
pub fn shared_context(mode: TaskRun) -> (AioContext, Rc<RefCell<UringMonitor>>) {
    shared_context_with(mode, ContextBuilder::new)
}

/// [`shared_context`], with the context built by `build` from a builder on
/// the shared monitor.
pub fn shared_context_with(
    mode: TaskRun,
    build: impl FnOnce(Box<dyn FdMonitor>) -> ContextBuilder,
) -> (AioContext, Rc<RefCell<UringMonitor>>) {
    let monitor = Rc::new(RefCell::new(monitor(mode)));
    let ctx = build(Box::new(Shared(Rc::clone(&monitor))))
        .build()
        .unwrap();
    (ctx, monitor)
}

struct Shared(Rc<RefCell<UringMonitor>>);

impl FdMonitor for Shared {
    fn name(&self) -> &'static str {
        self.0.borrow().name()
    }

    fn update(
        &mut self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        self.0.borrow_mut().update(fd, old, new)
    }

    fn wait(&mut self, events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        self.0.borrow_mut().wait(events, timeout)
    }

    fn pending(&mut self) -> Pending {
        self.0.borrow_mut().pending()
    }
}

/// Tests that close an fd and rely on what its number names next take
/// this lock, so that no other test of their file opens an fd meanwhile.
pub fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(PoisonError::into_inner)
}
