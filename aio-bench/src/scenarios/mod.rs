//! The scenarios: what each one compares, by name, and how to run it.
//!
//! Every scenario runs the event loop against a named reference measured in
//! the same run, on monitors it names itself, whatever `AIO_BACKEND` says:
//! `loop-iteration` on the poll and the epoll monitor, `bottom-half` on the
//! poll monitor ([`Backend::Poll`](aio::Backend::Poll)).

use std::io;

use clap::ValueEnum;

use crate::measure::Plan;
use crate::report::Report;

pub mod bottom_half;
pub mod loop_iteration;

/// A benchmark scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Scenario {
    /// One loop iteration that serves one active eventfd among K idle ones,
    /// on the poll and epoll monitors, against raw `ppoll` and `epoll` loops.
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

    /// Runs the scenario under `plan`; returns its comparisons and
    /// summaries.
    ///
    /// # Errors
    ///
    /// Setting up a context or an fd failed, or an iteration did not do its
    /// work.
    pub fn run(self, plan: &Plan) -> io::Result<Report> {
        match self {
            Scenario::LoopIteration => {
                let counts = if *plan == Plan::QUICK {
                    loop_iteration::QUICK_IDLE_COUNTS
                } else {
                    loop_iteration::IDLE_COUNTS
                };
                loop_iteration::run(plan, counts)
            }
            Scenario::BottomHalf => bottom_half::run(plan).map(|group| vec![group].into()),
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
