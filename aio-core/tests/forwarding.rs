//! A wrapped monitor is the monitor: `Box<M>`, `&mut M` and the test
//! wrapper forward every method, the defaulted `loop_fd` and `ops`
//! included (wrappers written by hand used to drop them, and a wrapped
//! monitor lost its loop fd).

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use aio_core::testing::{InlineEngine, SleepMonitor, TestMonitor};
use aio_core::{AioContext, EventNotifier, FdMonitor, OpEngine, Pending, ReadyEvent, Registration};

/// A sleeper with a loop fd and an operations engine of its own.
struct Watchable {
    sleeper: SleepMonitor,
    bell: EventNotifier,
    engine: InlineEngine,
}

impl Watchable {
    fn new() -> Watchable {
        Watchable {
            sleeper: SleepMonitor::new(),
            bell: EventNotifier::new().unwrap(),
            engine: InlineEngine::new(),
        }
    }
}

impl FdMonitor for Watchable {
    fn name(&self) -> &'static str {
        "watchable"
    }

    fn update(
        &mut self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        self.sleeper.update(fd, old, new)
    }

    fn wait(&mut self, events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        self.sleeper.wait(events, timeout)
    }

    fn pending(&mut self) -> Pending {
        self.sleeper.pending()
    }

    fn ops(&mut self) -> Option<&mut dyn OpEngine> {
        Some(&mut self.engine)
    }

    fn loop_fd(&mut self) -> io::Result<BorrowedFd<'_>> {
        Ok(self.bell.as_fd())
    }
}

/// Asserts that `monitor` answers as the `Watchable` whose bell is `bell`.
fn assert_is_watchable(monitor: &mut impl FdMonitor, bell: RawFd, what: &str) {
    assert_eq!(monitor.name(), "watchable", "{what}");
    assert_eq!(
        monitor.loop_fd().map(|fd| fd.as_raw_fd()).ok(),
        Some(bell),
        "{what} keeps the loop fd"
    );
    assert!(
        monitor.ops().is_some(),
        "{what} keeps the operations engine"
    );
}

#[test]
fn every_wrapper_keeps_the_loop_fd_and_the_engine() {
    let mut watchable = Watchable::new();
    let bell = watchable.bell.as_raw_fd();
    assert_is_watchable(&mut &mut watchable, bell, "&mut M");
    let mut boxed = Box::new(watchable);
    assert_is_watchable(&mut boxed, bell, "Box<M>");
    let mut dynamic: Box<dyn FdMonitor> = boxed;
    assert_is_watchable(&mut dynamic, bell, "Box<dyn FdMonitor>");
    let mut wrapped = TestMonitor::new(dynamic);
    assert_is_watchable(&mut wrapped, bell, "TestMonitor<Box<dyn FdMonitor>>");
    let mut twice = TestMonitor::new(Box::new(wrapped));
    assert_is_watchable(&mut twice, bell, "TestMonitor<Box<TestMonitor<_>>>");
}

#[test]
fn a_context_on_a_wrapped_monitor_has_its_loop_fd() {
    let file = |fd: BorrowedFd<'_>| {
        let stat = rustix::fs::fstat(fd).unwrap();
        (stat.st_dev, stat.st_ino)
    };
    let watchable = Watchable::new();
    let bell = file(watchable.bell.as_fd());
    let monitor = TestMonitor::new(Box::new(watchable)).named("wrapped");
    let ctx = AioContext::with_monitor(Box::new(monitor)).unwrap();
    assert_eq!(ctx.backend().name, "wrapped");
    let loop_fd = ctx.loop_fd().expect("the wrapped monitor's loop fd");
    // The context hands out its own copy of the monitor's fd.
    assert_eq!(file(loop_fd.as_fd()), bell);
}

/// A monitor without a loop fd says so through every wrapper, naming
/// itself.
#[test]
fn a_monitor_without_a_loop_fd_says_so_through_a_wrapper() {
    let mut wrapped = TestMonitor::new(Box::new(SleepMonitor::new()));
    let err = wrapped.loop_fd().unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    assert!(err.to_string().contains("sleep"), "{err}");
}
