//! The scenarios: what each one compares, by name, and how to run it.
//!
//! Every scenario runs the event loop on each monitor it names
//! ([`Monitor`](crate::env::Monitor)), whatever `AIO_BACKEND` says, next to
//! references measured in the same run, and reports its targets.

use std::io;

use clap::ValueEnum;

use crate::env::Env;
use crate::report::ScenarioReport;

pub mod allocations;
pub mod async_await;
pub mod bottom_half;
pub mod churn;
pub mod loop_iteration;
pub mod nbd;
pub mod ops;
pub mod ping_pong;
pub mod remote_notify;
pub mod timers;

/// A benchmark scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Scenario {
    /// Two threads bounce a message between their loops: eventfds with
    /// polling off (a), a shared counter with polling on, always notified
    /// (b) or only when the receiver will block (c), a socket pair (d).
    PingPong,
    /// One non-blocking loop iteration serving one active eventfd among K
    /// idle ones.
    LoopIteration,
    /// Adding and removing a handler.
    Churn,
    /// Bottom halves: one-shot, reused, self-rescheduling, and from another
    /// thread.
    BottomHalf,
    /// N threads notify a loop that blocks when idle: wake-ups per second,
    /// doorbell writes per wake-up.
    RemoteNotify,
    /// Lateness of 100 us and 1 ms timers.
    Timers,
    /// Heap allocations per iteration of the steady-state paths.
    Allocations,
    /// The NBD server against qemu-nbd: qemu-img bench, 4 KiB reads and
    /// writes at queue depth 1 and 32.
    Nbd,
    /// 4 KiB random reads through the operations API (the ring, the
    /// thread pool) against io_uring by hand, tokio's way and `pread`.
    Ops,
    /// The async layer against tokio's current-thread runtime: socket
    /// ping-pong (polling off and on), spawn + join, same-thread wake.
    Async,
}

impl Scenario {
    /// Every scenario, in the order they run by default.
    pub const ALL: [Scenario; 10] = [
        Scenario::PingPong,
        Scenario::LoopIteration,
        Scenario::Churn,
        Scenario::BottomHalf,
        Scenario::RemoteNotify,
        Scenario::Timers,
        Scenario::Allocations,
        Scenario::Nbd,
        Scenario::Ops,
        Scenario::Async,
    ];

    /// The name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::PingPong => "ping-pong",
            Scenario::LoopIteration => "loop-iteration",
            Scenario::Churn => "churn",
            Scenario::BottomHalf => "bottom-half",
            Scenario::RemoteNotify => "remote-notify",
            Scenario::Timers => "timers",
            Scenario::Allocations => "allocations",
            Scenario::Nbd => "nbd",
            Scenario::Ops => "ops",
            Scenario::Async => "async",
        }
    }

    /// Runs the scenario.
    ///
    /// # Errors
    ///
    /// Setting up a context, an fd or a thread failed, or an iteration did
    /// not do its work.
    pub fn run(self, env: &Env<'_>) -> io::Result<ScenarioReport> {
        match self {
            Scenario::PingPong => ping_pong::run(env),
            Scenario::LoopIteration => loop_iteration::run(env),
            Scenario::Churn => churn::run(env),
            Scenario::BottomHalf => bottom_half::run(env),
            Scenario::RemoteNotify => remote_notify::run(env),
            Scenario::Timers => timers::run(env),
            Scenario::Allocations => allocations::run(env),
            Scenario::Nbd => nbd::run(env),
            Scenario::Ops => ops::run(env),
            Scenario::Async => async_await::run(env),
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
