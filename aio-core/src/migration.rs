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
//!
//! [`Migration`] owns the plans and the backend report; the moves
//! themselves, which touch the registry and the monitor, are the context's
//! (`context.rs`).

use std::cell::RefCell;
use std::fmt;
use std::io;

use crate::backend::{BackendInfo, PlannedUpgrade};
use crate::monitor::FdMonitor;

type OpenMonitor = Box<dyn FnOnce() -> io::Result<Box<dyn FdMonitor>>>;

/// A monitor to move to if the current one fails: its name, and how to set
/// it up.
pub(crate) struct Fallback {
    name: &'static str,
    open: OpenMonitor,
}

impl Fallback {
    pub(crate) fn new(
        name: &'static str,
        open: impl FnOnce() -> io::Result<Box<dyn FdMonitor>> + 'static,
    ) -> Fallback {
        Fallback {
            name,
            open: Box::new(open),
        }
    }

    /// Sets the monitor up: its name, and the monitor or why not.
    pub(crate) fn open(self) -> (&'static str, io::Result<Box<dyn FdMonitor>>) {
        (self.name, (self.open)())
    }
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

    /// Sets the monitor up: the plan, and the monitor or why not.
    fn open(self) -> (PlannedUpgrade, io::Result<Box<dyn FdMonitor>>) {
        (self.planned(), (self.open)())
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

/// Which monitor a context runs on and why (its backend report), and where
/// it may move: the planned upgrade and the fallback, each used once.
pub(crate) struct Migration {
    report: RefCell<BackendInfo>,
    /// A planned move to another monitor, until it is made or fails.
    upgrade: RefCell<Option<Upgrade>>,
    /// Where to move if the monitor fails, until it is used.
    fallback: RefCell<Option<Fallback>>,
}

impl Migration {
    pub(crate) fn new(
        mut report: BackendInfo,
        upgrade: Option<Upgrade>,
        fallback: Option<Fallback>,
    ) -> Migration {
        report.upgrade = upgrade.as_ref().map(Upgrade::planned);
        Migration {
            report: RefCell::new(report),
            upgrade: RefCell::new(upgrade),
            fallback: RefCell::new(fallback),
        }
    }

    /// The backend report.
    pub(crate) fn report(&self) -> BackendInfo {
        self.report.borrow().clone()
    }

    /// Sets up the monitor of the planned upgrade, if the context serves
    /// enough handlers (`handlers` is asked only if an upgrade is planned).
    /// The plan is used up: returns it, and the monitor or why not.
    #[inline]
    pub(crate) fn open_due_upgrade(
        &self,
        handlers: impl FnOnce() -> usize,
    ) -> Option<(PlannedUpgrade, io::Result<Box<dyn FdMonitor>>)> {
        let due = self
            .upgrade
            .borrow()
            .as_ref()
            .is_some_and(|u| handlers() >= u.at_handlers);
        if !due {
            return None;
        }
        self.upgrade.take().map(Upgrade::open)
    }

    /// Records how the move from `from` for `upgrade` went.
    pub(crate) fn upgraded(
        &self,
        upgrade: PlannedUpgrade,
        from: &'static str,
        moved: io::Result<()>,
    ) {
        let mut report = self.report.borrow_mut();
        match moved {
            Ok(()) => report.upgraded(upgrade.name, from, upgrade.at_handlers),
            Err(e) => {
                report.upgrade = None;
                let reason = format!("upgrade at {} handlers failed: {e}", upgrade.at_handlers);
                report.skip(upgrade.name, reason);
            }
        }
    }

    /// The fallback, used up.
    pub(crate) fn take_fallback(&self) -> Option<Fallback> {
        self.fallback.take()
    }

    /// Records how the move from `from`, which failed with `error`, to the
    /// fallback `name` went. Returns whether the context moved.
    pub(crate) fn fell_back(
        &self,
        name: &'static str,
        from: &'static str,
        error: &io::Error,
        moved: io::Result<()>,
    ) -> bool {
        let mut report = self.report.borrow_mut();
        match moved {
            Ok(()) => {
                report.fell_back(name, from, error);
                true
            }
            Err(e) => {
                report.skip(name, format!("fallback after {from} failed ({error}): {e}"));
                false
            }
        }
    }

    /// Records a move that the program asked for.
    pub(crate) fn moved(&self, to: &'static str, from: &'static str, why: String) {
        self.report.borrow_mut().moved_to(to, from, why);
    }
}
