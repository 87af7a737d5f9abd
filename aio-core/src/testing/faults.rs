//! Fault injection: a [`TestMonitor`] given a [`Faults`] schedule makes, on
//! the schedule the test sets, `update` or `wait` of the [`FdMonitor`] it
//! wraps fail with an errno, or makes `wait` report spurious readiness,
//! duplicate events, or events for stale tokens.
//!
//! What the injected faults stand for:
//!
//! * [`Fault::Error`] on `update`: the kernel refused the change
//!   (`ENOMEM`, `EBADF`, ...). The wrapped monitor is not called, so it
//!   still holds the old registration, as the [`FdMonitor`] contract asks
//!   of a failed update.
//! * [`Fault::Error`] on `wait`: the wait failed before it collected
//!   anything. `EINTR` here means what a monitor that does not retry it
//!   would return: the core does not retry it itself (the contract makes
//!   that the monitor's job), so [`AioContext::poll`](crate::AioContext::poll)
//!   returns it (`ErrorKind::Interrupted`) with nothing dispatched, and the
//!   caller may simply poll again.
//! * [`Fault::Spurious`]: the wait reports every registration ready for
//!   reading and writing, whether or not it is (what `poll(2)` may do after
//!   a wake-up whose data another reader took).
//! * [`Fault::Duplicate`]: each event of the wait is reported twice.
//! * [`Fault::Stale`]: the wait reports, as readable, every token that
//!   this monitor held once and no longer holds (a removed or replaced
//!   registration, as io_uring does with completions that arrive late).
//!
//! The schedule also keeps the registrations the wrapped monitor holds, so
//! a test can check that none is lost or leaked.
//!
//! ```
//! use aio_core::testing::{Fault, Faults, SleepMonitor, TestMonitor};
//! use aio_core::AioContext;
//!
//! let faults = Faults::new();
//! let monitor = TestMonitor::new(SleepMonitor::new()).faults(&faults);
//! let ctx = AioContext::with_monitor(Box::new(monitor))?;
//! faults.on_wait(0, Fault::Error(libc::EINTR));
//! let err = ctx.poll(false).unwrap_err();
//! assert_eq!(err.kind(), std::io::ErrorKind::Interrupted);
//! assert!(ctx.poll(false).is_ok(), "the context goes on");
//! assert_eq!(faults.injected(), 1);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::time::Duration;

use crate::{Readiness, ReadyEvent, Registration, Token};

#[cfg(doc)]
use super::TestMonitor;
#[cfg(doc)]
use crate::FdMonitor;

/// What to do to one call of the wrapped monitor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Fail with this errno without calling the wrapped monitor.
    Error(i32),
    /// (`wait` only) Report every registration readable and writable.
    Spurious,
    /// (`wait` only) Report each event twice.
    Duplicate,
    /// (`wait` only) Report every token held once and no longer, readable.
    Stale,
}

#[derive(Debug, Default)]
struct State {
    /// The fault for each coming call, front first (`None`: pass through).
    updates: VecDeque<Option<Fault>>,
    waits: VecDeque<Option<Fault>>,
    injected: usize,
    /// What the wrapped monitor holds.
    held: HashMap<RawFd, Registration>,
    /// Tokens it held once and no longer holds (the last few).
    retired: VecDeque<Token>,
}

/// How many retired tokens are kept for [`Fault::Stale`].
const RETIRED_KEPT: usize = 64;

/// The schedule of faults and what the wrapped monitor holds, shared by the
/// test and its [`TestMonitor`]s.
#[derive(Clone, Default)]
pub struct Faults(Rc<RefCell<State>>);

impl Faults {
    /// No faults scheduled.
    pub fn new() -> Faults {
        Faults::default()
    }

    /// Makes `update` call number `after` from now (0: the next one) fail
    /// as `fault` says (only [`Fault::Error`] applies to `update`).
    pub fn on_update(&self, after: usize, fault: Fault) {
        schedule(&mut self.0.borrow_mut().updates, after, fault);
    }

    /// Makes `wait` call number `after` from now (0: the next one) go
    /// wrong as `fault` says.
    pub fn on_wait(&self, after: usize, fault: Fault) {
        schedule(&mut self.0.borrow_mut().waits, after, fault);
    }

    /// Forgets the faults scheduled and not yet injected.
    pub fn clear(&self) {
        let mut state = self.0.borrow_mut();
        state.updates.clear();
        state.waits.clear();
    }

    /// How many faults have been injected.
    pub fn injected(&self) -> usize {
        self.0.borrow().injected
    }

    /// How many faults are scheduled and not yet injected.
    pub fn scheduled(&self) -> usize {
        let state = self.0.borrow();
        state.updates.iter().chain(&state.waits).flatten().count()
    }

    /// How many fds the wrapped monitor holds a registration for.
    pub fn held(&self) -> usize {
        self.0.borrow().held.len()
    }

    /// The registration the wrapped monitor holds for `fd`.
    pub fn held_for(&self, fd: RawFd) -> Option<Registration> {
        self.0.borrow().held.get(&fd).copied()
    }

    fn next_update(&self) -> Option<Fault> {
        self.take(|s| &mut s.updates)
    }

    fn next_wait(&self) -> Option<Fault> {
        self.take(|s| &mut s.waits)
    }

    fn take(&self, queue: impl Fn(&mut State) -> &mut VecDeque<Option<Fault>>) -> Option<Fault> {
        let mut state = self.0.borrow_mut();
        let fault = queue(&mut state).pop_front().flatten();
        if fault.is_some() {
            state.injected += 1;
        }
        fault
    }

    /// Whether the next `wait` is to go wrong.
    pub(super) fn wait_fault_is_next(&self) -> bool {
        matches!(self.0.borrow().waits.front(), Some(Some(_)))
    }

    fn record(&self, fd: RawFd, old: Option<Registration>, new: Option<Registration>) {
        let mut state = self.0.borrow_mut();
        let previous = match new {
            Some(registration) => state.held.insert(fd, registration),
            None => state.held.remove(&fd),
        };
        for token in [previous.map(|r| r.token), old.map(|r| r.token)]
            .into_iter()
            .flatten()
        {
            if new.is_none_or(|n| n.token != token) && !state.retired.contains(&token) {
                if state.retired.len() == RETIRED_KEPT {
                    state.retired.pop_front();
                }
                state.retired.push_back(token);
            }
        }
    }
}

fn schedule(queue: &mut VecDeque<Option<Fault>>, after: usize, fault: Fault) {
    if queue.len() <= after {
        queue.resize(after + 1, None);
    }
    queue[after] = Some(fault);
}

impl fmt::Debug for Faults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.0.borrow();
        f.debug_struct("Faults")
            .field("injected", &state.injected)
            .field("held", &state.held.len())
            .finish_non_exhaustive()
    }
}

impl Faults {
    /// One `update` of a [`TestMonitor`]: the scheduled fault, or
    /// `update` (the wrapped monitor's) and the record of what it holds.
    pub(super) fn update(
        &self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
        update: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        if let Some(Fault::Error(errno)) = self.next_update() {
            return Err(io::Error::from_raw_os_error(errno));
        }
        update()?;
        self.record(fd, old, new);
        Ok(())
    }

    /// One `wait` of a [`TestMonitor`], through `wait` (the wrapped
    /// monitor's) as the scheduled fault says.
    pub(super) fn wait(
        &self,
        events: &mut Vec<ReadyEvent>,
        timeout: Option<Duration>,
        mut wait: impl FnMut(&mut Vec<ReadyEvent>, Option<Duration>) -> io::Result<()>,
    ) -> io::Result<()> {
        match self.next_wait() {
            None => wait(events, timeout),
            Some(Fault::Error(errno)) => Err(io::Error::from_raw_os_error(errno)),
            Some(Fault::Spurious) => {
                wait(events, Some(Duration::ZERO))?;
                let state = self.0.borrow();
                for registration in state.held.values() {
                    events.push(ReadyEvent {
                        token: registration.token,
                        readiness: Readiness::READABLE | Readiness::WRITABLE,
                    });
                }
                Ok(())
            }
            Some(Fault::Duplicate) => {
                let before = events.len();
                wait(events, timeout)?;
                events.extend_from_within(before..);
                Ok(())
            }
            Some(Fault::Stale) => {
                let state = self.0.borrow();
                events.extend(state.retired.iter().map(|&token| ReadyEvent {
                    token,
                    readiness: Readiness::READABLE,
                }));
                drop(state);
                wait(events, Some(Duration::ZERO))
            }
        }
    }
}
