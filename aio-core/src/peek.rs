//! Peeking at the monitor during the busy-poll window, for handlers that
//! have no `poll` callback.
//!
//! QEMU turns busy polling off on poll and epoll as soon as one handler has
//! no `poll` callback, since the loop would not see that fd while it spins.
//! Here the window also asks the monitor, without blocking, whether an fd is
//! ready: for free where the monitor shows readiness in user space
//! (io_uring's completion ring), and otherwise with a zero-timeout wait (a
//! system call) every [`PEEK_INTERVAL_NS`]. A peek's cost is measured; when
//! it is too large for the window (`ppoll` over thousands of fds), the loop
//! does not busy-poll such a context at all.

use std::io;
use std::time::Duration;

use crate::AioContext;
use crate::monitor::{Pending, ReadyEvent};
use crate::stats::Counters;

/// The least time between two peeks that cost a system call.
pub(crate) const PEEK_INTERVAL_NS: u64 = 1_000;

/// A peek may cost at most this fraction of the longest window.
const PEEK_COST_SHARE: u64 = 8;

/// While peeks cost too much, one window in this many runs anyway.
const PEEK_PROBE_EVERY: u32 = 64;

impl AioContext {
    /// Whether the window must peek at the monitor with a system call: some
    /// watched handler has no `poll` callback, and the monitor cannot show
    /// readiness by itself.
    pub(crate) fn window_needs_peek(&self) -> bool {
        !self.inner.registry.borrow().all_watched_have_poll()
            && self.inner.monitor.borrow_mut().pending() == Pending::Unknown
    }

    /// Whether a peek is cheap next to the longest window (unmeasured peeks
    /// count as cheap; the first one measures).
    pub(crate) fn peek_is_cheap(&self) -> bool {
        let cost = self.inner.peek_cost_ns.get();
        cost.saturating_mul(PEEK_COST_SHARE) <= self.inner.params.get().max_ns
    }

    /// While peeks are judged too expensive, every [`PEEK_PROBE_EVERY`]th
    /// window that was refused for it runs anyway, to measure again: the
    /// machine may have been busy, or fds may have gone.
    pub(crate) fn peek_probe_due(&self) -> bool {
        let refused = self.inner.peek_refusals.get() + 1;
        self.inner.peek_refusals.set(refused % PEEK_PROBE_EVERY);
        refused == PEEK_PROBE_EVERY
    }

    /// Asks the monitor what is ready without blocking, as part of
    /// iteration `iteration`, and measures what that cost. Returns whether
    /// it found anything.
    pub(crate) fn peek(&self, ready: &mut Vec<ReadyEvent>, iteration: u64) -> io::Result<bool> {
        let start = self.inner.clock.now_ns();
        let found = self.submit(ready, iteration)?;
        let cost = self.inner.clock.now_ns().saturating_sub(start);
        self.record_peek_cost(cost);
        Ok(found)
    }

    /// A zero-timeout wait: hands the monitor's queued requests to the
    /// kernel and collects what is ready. Returns whether it found anything.
    pub(crate) fn submit(&self, ready: &mut Vec<ReadyEvent>, iteration: u64) -> io::Result<bool> {
        let before = ready.len();
        self.note_wait(self.inner.clock.now_ns(), iteration);
        self.inner
            .monitor
            .borrow_mut()
            .wait(ready, Some(Duration::ZERO))?;
        Ok(ready.len() > before)
    }

    /// Keeps the estimate of a peek's cost near the cheapest recent ones: it
    /// follows a cheaper peek at once and a dearer one by a sixteenth, so a
    /// peek that was preempted does not turn busy polling off.
    fn record_peek_cost(&self, cost: u64) {
        let old = self.inner.peek_cost_ns.get();
        let estimate = if old == 0 || cost <= old {
            cost
        } else {
            old + (cost - old) / 16
        };
        self.inner.peek_cost_ns.set(estimate.max(1));
    }

    /// Records a monitor wait: when, and in which iteration.
    pub(crate) fn note_wait(&self, now: u64, iteration: u64) {
        Counters::bump(&self.inner.counters.waits);
        self.inner.last_wait.set(now);
        self.inner.last_wait_iteration.set(iteration);
    }
}
