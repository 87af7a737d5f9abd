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

    /// Asks the monitor what is ready without blocking, as part of
    /// iteration `iteration`. Returns whether it found anything.
    pub(crate) fn peek(&self, ready: &mut Vec<ReadyEvent>, iteration: u64) -> io::Result<bool> {
        let inner = &*self.inner;
        let before = ready.len();
        let start = inner.clock.now_ns();
        self.note_wait(start, iteration);
        inner
            .monitor
            .borrow_mut()
            .wait(ready, Some(Duration::ZERO))?;
        let cost = inner.clock.now_ns().saturating_sub(start);
        let average = match inner.peek_cost_ns.get() {
            0 => cost,
            old => (old * 3 + cost) / 4,
        };
        inner.peek_cost_ns.set(average);
        Ok(ready.len() > before)
    }

    /// Records a monitor wait: when, and in which iteration.
    pub(crate) fn note_wait(&self, now: u64, iteration: u64) {
        Counters::bump(&self.inner.counters.waits);
        self.inner.last_wait.set(now);
        self.inner.last_wait_iteration.set(iteration);
    }
}
