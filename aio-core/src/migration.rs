//! Moving a context's registrations to another monitor while it runs: an
//! upgrade once it serves many fds, or a fallback when its monitor fails.
//!
//! `poll(2)` costs time in proportion to the number of fds it watches; epoll
//! costs a system call per registration change instead. So a context can
//! start on one monitor and move every registration to another once the
//! number of handlers reaches a threshold (QEMU starts on poll and moves to
//! epoll at 64 fds). The move happens at the start of an outermost `poll`,
//! never inside a nested one, and loses no readiness: monitors are
//! level-triggered, and the new one reports what was pending.
//!
//! A monitor can also fail after setup (an io_uring instance the kernel
//! gives up on). With a planned fallback, the context moves to it and goes
//! on, instead of returning the error from every `poll`.

use std::fmt;
use std::io;

use crate::AioContext;
use crate::backend::PlannedUpgrade;
use crate::monitor::FdMonitor;

type OpenMonitor = Box<dyn FnOnce() -> io::Result<Box<dyn FdMonitor>>>;

/// A monitor to move to if the current one fails: its name, and how to set
/// it up.
pub(crate) struct Fallback {
    pub(crate) name: &'static str,
    pub(crate) open: OpenMonitor,
}

/// A planned move to another monitor ([`ContextBuilder::upgrade`](crate::ContextBuilder::upgrade)).
pub struct Upgrade {
    at_handlers: usize,
    name: &'static str,
    open: OpenMonitor,
}

impl Upgrade {
    /// Moves to the monitor that `open` sets up (named `name` in reports)
    /// once `at_handlers` fd handlers are registered.
    pub fn new(
        at_handlers: usize,
        name: &'static str,
        open: impl FnOnce() -> io::Result<Box<dyn FdMonitor>> + 'static,
    ) -> Upgrade {
        Upgrade {
            at_handlers,
            name,
            open: Box::new(open),
        }
    }

    /// The number of handlers at which the move happens.
    pub fn at_handlers(&self) -> usize {
        self.at_handlers
    }

    /// How the plan shows in a [`BackendInfo`](crate::BackendInfo).
    pub fn planned(&self) -> PlannedUpgrade {
        PlannedUpgrade {
            name: self.name,
            at_handlers: self.at_handlers,
        }
    }
}

impl fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upgrade")
            .field("at_handlers", &self.at_handlers)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl AioContext {
    /// Makes the planned move if the context has reached the threshold; the
    /// caller makes sure no `poll` is on the stack but its own outermost one. A monitor that cannot be set up, or that
    /// refuses a registration, leaves the context where it is, with the
    /// reason in its backend report; the move is not tried again.
    pub(crate) fn upgrade_if_due(&self) {
        let inner = &self.inner;
        let due = inner
            .upgrade
            .borrow()
            .as_ref()
            .is_some_and(|u| self.handler_count() >= u.at_handlers);
        if !due {
            return;
        }
        let Some(upgrade) = inner.upgrade.take() else {
            return;
        };
        let from = inner.monitor.borrow().name();
        let moved = (upgrade.open)().and_then(|monitor| self.move_registrations(monitor));
        let mut backend = inner.backend.borrow_mut();
        match moved {
            Ok(()) => backend.upgraded(upgrade.name, from, upgrade.at_handlers),
            Err(e) => {
                backend.upgrade = None;
                let reason = format!("upgrade at {} handlers failed: {e}", upgrade.at_handlers);
                backend.skip(upgrade.name, reason);
            }
        }
    }
}

impl AioContext {
    /// After the monitor's wait failed with `error`: moves to the planned
    /// fallback monitor, if there is one and it takes every registration.
    /// Returns whether the context moved (and `error` is dealt with).
    pub(crate) fn fall_back(&self, error: &io::Error) -> bool {
        let inner = &self.inner;
        let Some(fallback) = inner.fallback.take() else {
            return false;
        };
        let from = inner.monitor.borrow().name();
        // A ring that failed for good cannot say when the kernel is done
        // with the buffers of its operations.
        self.abandon_monitor_ops();
        let moved = (fallback.open)().and_then(|monitor| self.move_registrations(monitor));
        let mut backend = inner.backend.borrow_mut();
        match moved {
            Ok(()) => {
                backend.fell_back(fallback.name, from, error);
                true
            }
            Err(e) => {
                backend.skip(
                    fallback.name,
                    format!("fallback after {from} failed ({error}): {e}"),
                );
                false
            }
        }
    }
}
