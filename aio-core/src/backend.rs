//! `BackendInfo`: which monitor a context runs on, and how it came to.

use std::fmt;

/// Which monitor a context runs on and why ([`AioContext::backend`](crate::AioContext::backend)).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// The monitor's name ([`FdMonitor::name`](crate::FdMonitor::name)).
    pub name: &'static str,
    /// How it was selected.
    pub selection: Selection,
    /// Candidates that were tried and refused (at selection, or when an
    /// upgrade failed), with why.
    pub skipped: Vec<Skipped>,
    /// A move to another monitor planned for when enough fds are
    /// registered; `None` once it is made or has failed.
    pub upgrade: Option<PlannedUpgrade>,
}

/// A planned [`Upgrade`](crate::Upgrade), as reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedUpgrade {
    /// The monitor it moves to.
    pub name: &'static str,
    /// The number of handlers at which it moves.
    pub at_handlers: usize,
}

/// How a context's monitor was selected.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Selection {
    /// Given by the program that built the context
    /// ([`ContextBuilder::new`](crate::ContextBuilder::new),
    /// [`AioContext::with_monitor`](crate::AioContext::with_monitor)).
    Given,
    /// The best monitor available, picked by default.
    Chosen,
    /// Forced by the user; `by` says how (`"builder"`, `"AIO_BACKEND"`).
    Forced {
        /// Where the choice came from.
        by: &'static str,
    },
    /// The context moved its registrations here from another monitor, by
    /// [`AioContext::set_monitor`](crate::AioContext::set_monitor).
    Moved {
        /// The monitor it ran on before.
        from: &'static str,
        /// Why, as the caller said.
        why: String,
    },
    /// The context fell back to this monitor when the one it ran on failed.
    FellBack {
        /// The monitor that failed.
        from: &'static str,
        /// Its error.
        error: String,
    },
    /// The context upgraded to this monitor once it served enough fds.
    Upgraded {
        /// The monitor it started on.
        from: &'static str,
        /// The number of handlers at which it moved.
        at_handlers: usize,
    },
}

/// A candidate monitor that was not used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The candidate's name.
    pub name: &'static str,
    /// Why it was refused (an error's text, or "not compiled in").
    pub reason: String,
}

impl BackendInfo {
    /// A monitor given by the program that built the context.
    pub fn given(name: &'static str) -> BackendInfo {
        BackendInfo {
            name,
            selection: Selection::Given,
            skipped: Vec::new(),
            upgrade: None,
        }
    }

    /// A monitor picked as the best available.
    pub fn chosen(name: &'static str) -> BackendInfo {
        BackendInfo {
            name,
            selection: Selection::Chosen,
            skipped: Vec::new(),
            upgrade: None,
        }
    }

    /// A monitor forced by the user.
    pub fn forced(name: &'static str, by: &'static str) -> BackendInfo {
        BackendInfo {
            name,
            selection: Selection::Forced { by },
            skipped: Vec::new(),
            upgrade: None,
        }
    }

    /// Adds a candidate that was refused.
    pub fn with_skipped(mut self, name: &'static str, reason: impl fmt::Display) -> BackendInfo {
        self.skip(name, reason);
        self
    }

    pub(crate) fn skip(&mut self, name: &'static str, reason: impl fmt::Display) {
        self.skipped.push(Skipped {
            name,
            reason: reason.to_string(),
        });
    }

    pub(crate) fn moved_to(&mut self, name: &'static str, from: &'static str, why: String) {
        self.name = name;
        self.selection = Selection::Moved { from, why };
    }

    pub(crate) fn fell_back(
        &mut self,
        name: &'static str,
        from: &'static str,
        error: &dyn fmt::Display,
    ) {
        self.name = name;
        self.selection = Selection::FellBack {
            from,
            error: error.to_string(),
        };
    }

    pub(crate) fn upgraded(&mut self, name: &'static str, from: &'static str, at_handlers: usize) {
        self.name = name;
        self.selection = Selection::Upgraded { from, at_handlers };
        self.upgrade = None;
    }
}

impl fmt::Display for BackendInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name)?;
        match &self.selection {
            Selection::Given => write!(f, " (given by the program)")?,
            Selection::Chosen => write!(f, " (best available)")?,
            Selection::Forced { by } => write!(f, " (forced by {by})")?,
            Selection::Moved { from, why } => write!(f, " (moved from {from}: {why})")?,
            Selection::FellBack { from, error } => write!(f, " (fell back from {from}: {error})")?,
            Selection::Upgraded { from, at_handlers } => {
                write!(f, " (upgraded from {from} at {at_handlers} handlers)")?;
            }
        }
        if let Some(upgrade) = self.upgrade {
            write!(
                f,
                ", moving to {} at {} handlers",
                upgrade.name, upgrade.at_handlers
            )?;
        }
        for skipped in &self.skipped {
            write!(f, "; {} skipped: {}", skipped.name, skipped.reason)?;
        }
        Ok(())
    }
}
