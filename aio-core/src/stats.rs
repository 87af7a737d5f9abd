//! `Stats`: counters of what the loop has done, for tests and benchmarks
//! (how many waits blocked, how often busy polling found work).

use std::cell::Cell;
use std::sync::atomic::Ordering;

use crate::remote::Shared;

/// A snapshot of a context's counters ([`AioContext::stats`](crate::AioContext::stats)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Calls of `poll`, nested ones included.
    pub iterations: u64,
    /// Calls of the monitor's `wait`.
    pub waits: u64,
    /// Waits with a non-zero timeout (the loop may have slept).
    pub blocking_waits: u64,
    /// Times the loop announced to notifiers that it may block; each allows
    /// at most one doorbell write. (A notification already pending then
    /// makes the wait non-blocking, so this can exceed `blocking_waits`.)
    pub announced_blocks: u64,
    /// Busy-poll windows that found work (a `poll` callback said yes, the
    /// monitor had events, or a notification arrived).
    pub poll_hits: u64,
    /// Busy-poll windows that ran out of time.
    pub poll_misses: u64,
    /// Busy-poll windows not run because they would have had to peek at the
    /// monitor with system calls (a handler without a `poll` callback, on a
    /// monitor that cannot show readiness in user space), and a peek costs
    /// more than an eighth of `max_ns`. The loop blocks instead, and probes
    /// again after 1, 2, 4, ... up to 64 refused windows.
    pub poll_refusals: u64,
    /// What a peek at the monitor costs, about, in nanoseconds: the cheapest
    /// of the last eight measured (0 until one is).
    pub peek_cost_ns: u64,
    /// Writes to the context's doorbell by `notify` (each one a system call).
    pub doorbell_rings: u64,
    /// Handlers on the polled list.
    pub polled_handlers: usize,
    /// The largest poll time among them, in nanoseconds: how long the next
    /// window lasts.
    pub max_poll_ns: u64,
}

/// The home thread's counters.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) iterations: Cell<u64>,
    pub(crate) waits: Cell<u64>,
    pub(crate) blocking_waits: Cell<u64>,
    pub(crate) announced_blocks: Cell<u64>,
    pub(crate) poll_hits: Cell<u64>,
    pub(crate) poll_misses: Cell<u64>,
    pub(crate) poll_refusals: Cell<u64>,
    pub(crate) monitor_moves: Cell<u64>,
}

impl Counters {
    pub(crate) fn bump(counter: &Cell<u64>) {
        counter.set(counter.get() + 1);
    }

    pub(crate) fn snapshot(
        &self,
        shared: &Shared,
        polled_handlers: usize,
        max_poll_ns: u64,
        peek_cost_ns: u64,
    ) -> Stats {
        Stats {
            iterations: self.iterations.get(),
            waits: self.waits.get(),
            blocking_waits: self.blocking_waits.get(),
            announced_blocks: self.announced_blocks.get(),
            poll_hits: self.poll_hits.get(),
            poll_misses: self.poll_misses.get(),
            poll_refusals: self.poll_refusals.get(),
            peek_cost_ns,
            doorbell_rings: shared.doorbell_rings.load(Ordering::Relaxed),
            polled_handlers,
            max_poll_ns,
        }
    }
}
