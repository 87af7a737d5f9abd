//! The scenarios: what each one compares, by name, and how to run it.
//!
//! Every scenario runs the event loop on the poll monitor (forced with
//! [`Backend::Poll`](aio::Backend::Poll), whatever `AIO_BACKEND` says)
//! against a named reference measured in the same run.

use std::io;

use clap::ValueEnum;

use crate::measure::Plan;
use crate::report::Group;

pub mod bottom_half;
pub mod loop_iteration;

/// A benchmark scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Scenario {
    /// One loop iteration that serves one active eventfd among idle ones,
    /// against a raw `ppoll` loop.
    LoopIteration,
    /// Bottom halves: one-shot, reused, and scheduled from another thread.
    BottomHalf,
}

impl Scenario {
    /// Every scenario, in the order they run by default.
    pub const ALL: [Scenario; 2] = [Scenario::LoopIteration, Scenario::BottomHalf];

    /// The name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::LoopIteration => "loop-iteration",
            Scenario::BottomHalf => "bottom-half",
        }
    }

    /// Runs the scenario under `plan`; returns its comparisons.
    ///
    /// # Errors
    ///
    /// Setting up a context or an fd failed, or an iteration did not do its
    /// work.
    pub fn run(self, plan: &Plan) -> io::Result<Vec<Group>> {
        match self {
            Scenario::LoopIteration => loop_iteration::run(plan, loop_iteration::IDLE_COUNTS),
            Scenario::BottomHalf => bottom_half::run(plan).map(|group| vec![group]),
        }
    }
}

/// Fails unless a batch did exactly the work it was asked to.
pub(crate) fn check_done(what: &str, expected: u64, done: u64) -> io::Result<()> {
    if expected == done {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{what}: {done} callbacks ran for {expected} iterations"
        )))
    }
}
