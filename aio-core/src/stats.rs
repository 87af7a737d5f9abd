//! `Stats`: counters of what the loop has done, for tests and benchmarks
//! (how many waits blocked, how often busy polling found work).

use std::cell::Cell;

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

/// What the home thread counts.
#[derive(Clone, Copy)]
pub(crate) enum Counter {
    Iterations,
    Waits,
    BlockingWaits,
    AnnouncedBlocks,
    PollHits,
    PollMisses,
    PollRefusals,
    MonitorMoves,
}

/// The home thread's counters, one per [`Counter`].
#[derive(Default)]
pub(crate) struct Counters([Cell<u64>; 8]);

impl Counters {
    pub(crate) fn bump(&self, counter: Counter) {
        let cell = &self.0[counter as usize];
        cell.set(cell.get() + 1);
    }

    pub(crate) fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize].get()
    }

    pub(crate) fn snapshot(
        &self,
        doorbell_rings: u64,
        polled_handlers: usize,
        max_poll_ns: u64,
        peek_cost_ns: u64,
    ) -> Stats {
        Stats {
            iterations: self.get(Counter::Iterations),
            waits: self.get(Counter::Waits),
            blocking_waits: self.get(Counter::BlockingWaits),
            announced_blocks: self.get(Counter::AnnouncedBlocks),
            poll_hits: self.get(Counter::PollHits),
            poll_misses: self.get(Counter::PollMisses),
            poll_refusals: self.get(Counter::PollRefusals),
            peek_cost_ns,
            doorbell_rings,
            polled_handlers,
            max_poll_ns,
        }
    }
}
