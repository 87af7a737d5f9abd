//! `TestMonitor`: the one monitor wrapper for tests. It forwards every call
//! to the monitor it wraps (the defaulted [`loop_fd`](FdMonitor::loop_fd)
//! and [`ops`](FdMonitor::ops) included), counts the calls, injects the
//! faults of a [`Faults`] schedule, and lets a test replace what `update`,
//! `wait` or `pending` do with a hook that receives the wrapped monitor.
//!
//! ```
//! use std::io;
//! use aio_core::testing::{SleepMonitor, TestMonitor};
//! use aio_core::{AioContext, EventNotifier, FdHandler};
//!
//! let counted = TestMonitor::new(SleepMonitor::new()).named("counted");
//! let calls = counted.calls();
//! let ctx = AioContext::with_monitor(Box::new(counted))?;
//! let before = calls.updates();
//! let fd = EventNotifier::new()?;
//! ctx.set_fd_handler(&fd, Some(FdHandler::new().on_read(|_| {})))?;
//! assert_eq!((ctx.backend().name, calls.updates()), ("counted", before + 1));
//!
//! // A monitor that refuses every registration, as one out of memory would:
//! // the context cannot move its registrations there, and stays.
//! let refusing = TestMonitor::new(SleepMonitor::new())
//!     .on_update(|_, _, _, _| Err(io::Error::from_raw_os_error(libc::ENOMEM)));
//! let err = ctx.set_monitor(Box::new(refusing), "a test").unwrap_err();
//! assert_eq!(err.raw_os_error(), Some(libc::ENOMEM));
//! assert_eq!(ctx.backend().name, "counted");
//! # Ok::<(), io::Error>(())
//! ```

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use super::Faults;
use crate::{FdMonitor, OpEngine, Pending, ReadyEvent, Registration};

type UpdateHook<M> =
    Box<dyn FnMut(&mut M, RawFd, Option<Registration>, Option<Registration>) -> io::Result<()>>;
type WaitHook<M> = Box<dyn FnMut(&mut M, &mut Vec<ReadyEvent>, Option<Duration>) -> io::Result<()>>;
type PendingHook<M> = Box<dyn FnMut(&mut M) -> Pending>;

/// A monitor that forwards to the one it wraps, counting calls and running
/// the test's faults and hooks (see the [module](self)).
pub struct TestMonitor<M> {
    inner: M,
    name: Option<&'static str>,
    calls: Calls,
    faults: Option<Faults>,
    update_hook: Option<UpdateHook<M>>,
    wait_hook: Option<WaitHook<M>>,
    pending_hook: Option<PendingHook<M>>,
}

impl<M: FdMonitor> TestMonitor<M> {
    /// Wraps `inner`: every call goes straight through until the test adds
    /// faults or hooks.
    pub fn new(inner: M) -> TestMonitor<M> {
        TestMonitor {
            inner,
            name: None,
            calls: Calls::default(),
            faults: None,
            update_hook: None,
            wait_hook: None,
            pending_hook: None,
        }
    }

    /// Reports `name` instead of the wrapped monitor's.
    #[must_use]
    pub fn named(mut self, name: &'static str) -> TestMonitor<M> {
        self.name = Some(name);
        self
    }

    /// Injects the faults that `faults` schedules (see [`Faults`]); they
    /// act before the hooks, as a kernel's refusal would.
    #[must_use]
    pub fn faults(mut self, faults: &Faults) -> TestMonitor<M> {
        self.faults = Some(faults.clone());
        self
    }

    /// Runs `hook` instead of the wrapped monitor's `update`; the hook gets
    /// the monitor, to call it or not.
    #[must_use]
    pub fn on_update(
        mut self,
        hook: impl FnMut(&mut M, RawFd, Option<Registration>, Option<Registration>) -> io::Result<()>
        + 'static,
    ) -> TestMonitor<M> {
        self.update_hook = Some(Box::new(hook));
        self
    }

    /// Runs `hook` instead of the wrapped monitor's `wait`.
    #[must_use]
    pub fn on_wait(
        mut self,
        hook: impl FnMut(&mut M, &mut Vec<ReadyEvent>, Option<Duration>) -> io::Result<()> + 'static,
    ) -> TestMonitor<M> {
        self.wait_hook = Some(Box::new(hook));
        self
    }

    /// Runs `hook` instead of the wrapped monitor's `pending`.
    #[must_use]
    pub fn on_pending(mut self, hook: impl FnMut(&mut M) -> Pending + 'static) -> TestMonitor<M> {
        self.pending_hook = Some(Box::new(hook));
        self
    }

    /// The counts of this monitor's calls, shared: they go on counting
    /// after the monitor is handed to a context.
    pub fn calls(&self) -> Calls {
        self.calls.clone()
    }

    /// The wrapped monitor.
    pub fn inner(&mut self) -> &mut M {
        &mut self.inner
    }
}

impl<M: FdMonitor> FdMonitor for TestMonitor<M> {
    fn name(&self) -> &'static str {
        self.name.unwrap_or_else(|| self.inner.name())
    }

    fn update(
        &mut self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        Calls::hit(&self.calls.0.updates);
        let (inner, hook) = (&mut self.inner, &mut self.update_hook);
        let mut update = || match hook {
            Some(hook) => hook(inner, fd, old, new),
            None => inner.update(fd, old, new),
        };
        match &self.faults {
            Some(faults) => faults.update(fd, old, new, update),
            None => update(),
        }
    }

    fn wait(&mut self, events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        Calls::hit(&self.calls.0.waits);
        let (inner, hook) = (&mut self.inner, &mut self.wait_hook);
        let mut wait = |events: &mut Vec<ReadyEvent>, timeout| match hook {
            Some(hook) => hook(inner, events, timeout),
            None => inner.wait(events, timeout),
        };
        match &self.faults {
            Some(faults) => faults.wait(events, timeout, wait),
            None => wait(events, timeout),
        }
    }

    fn pending(&mut self) -> Pending {
        Calls::hit(&self.calls.0.pendings);
        if self.faults.as_ref().is_some_and(Faults::wait_fault_is_next) {
            // So that the core does call `wait` (a monitor that sees
            // readiness in user space would let it skip a zero-timeout one).
            return Pending::Yes;
        }
        match &mut self.pending_hook {
            Some(hook) => hook(&mut self.inner),
            None => self.inner.pending(),
        }
    }

    fn ops(&mut self) -> Option<&mut dyn OpEngine> {
        self.inner.ops()
    }

    fn loop_fd(&mut self) -> io::Result<BorrowedFd<'_>> {
        self.inner.loop_fd()
    }

    /// The wrapped monitor's answer, unless a hook stands in for its
    /// `update` (the hook may not refuse a closed fd).
    fn tracks_files(&self) -> bool {
        self.update_hook.is_none() && self.inner.tracks_files()
    }

    fn watches_current_file(&mut self, fd: RawFd, registration: Registration) -> bool {
        self.inner.watches_current_file(fd, registration)
    }
}

impl<M: FdMonitor> fmt::Debug for TestMonitor<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestMonitor")
            .field("inner", &self.inner.name())
            .field("calls", &self.calls)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

/// How many times each method of a [`TestMonitor`] was called.
#[derive(Clone, Debug, Default)]
pub struct Calls(Rc<Counts>);

#[derive(Debug, Default)]
struct Counts {
    updates: Cell<usize>,
    waits: Cell<usize>,
    pendings: Cell<usize>,
}

impl Calls {
    fn hit(count: &Cell<usize>) {
        count.set(count.get() + 1);
    }

    /// Calls of `update`.
    pub fn updates(&self) -> usize {
        self.0.updates.get()
    }

    /// Calls of `wait`.
    pub fn waits(&self) -> usize {
        self.0.waits.get()
    }

    /// Calls of `pending`.
    pub fn pendings(&self) -> usize {
        self.0.pendings.get()
    }
}
