//! Peeking at the monitor during the busy-poll window, for handlers that
//! have no `poll` callback, and the gate that decides whether such peeks are
//! cheap enough to poll at all.
//!
//! QEMU turns busy polling off on poll and epoll as soon as one handler has
//! no `poll` callback, since the loop would not see that fd while it spins.
//! Here the window also asks the monitor, without blocking, whether an fd is
//! ready: for free where the monitor shows readiness in user space
//! (io_uring's completion ring), and otherwise with a zero-timeout wait (a
//! system call) every [`PEEK_INTERVAL_NS`]. A peek's cost is measured; when
//! it is too large for the window (`ppoll` over thousands of fds), the loop
//! does not busy-poll such a context, but tries again soon (a probe window)
//! in case the machine was only busy for a moment.
//!
//! This module holds the gate; the peeks are made by the window in
//! `busy_poll.rs`.

use std::cell::Cell;

/// The least time between two peeks that cost a system call.
pub(crate) const PEEK_INTERVAL_NS: u64 = 1_000;

/// A peek may cost at most this fraction of the longest window.
const PEEK_COST_SHARE: u64 = 8;

/// How many recent peek costs the estimate looks at.
const PEEK_SAMPLES: usize = 8;

/// While peeks cost too much, the refused windows between two probe windows
/// double from 1 up to this many.
const PEEK_PROBE_MAX_GAP: u32 = 64;

/// What peeks have cost lately, and when to try a window again after
/// refusing some.
///
/// The estimate is the cheapest of the last [`PEEK_SAMPLES`] peeks: a peek
/// that was preempted, or that the kernel served slowly once, cannot shut
/// the window on its own. Only pure peeks are measured (the core hands the
/// monitor's queued requests to the kernel in a separate wait first, see
/// [`Pending::Submit`](crate::Pending::Submit)), so the estimate says what
/// asking costs, not what submitting does.
#[derive(Debug, Default)]
pub(crate) struct PeekGate {
    /// Recent costs in ns; 0 marks a slot not measured yet.
    samples: Cell<[u64; PEEK_SAMPLES]>,
    next: Cell<usize>,
    /// Refused windows since the last one that ran.
    refused: Cell<u32>,
    /// Refused windows to let pass before the next probe.
    gap: Cell<u32>,
}

impl PeekGate {
    /// What a peek costs, about: the cheapest recent one (`None` until one
    /// is measured).
    pub(crate) fn cost_ns(&self) -> Option<u64> {
        self.samples.get().into_iter().filter(|&c| c > 0).min()
    }

    /// Records what one peek cost.
    pub(crate) fn record(&self, cost_ns: u64) {
        let mut samples = self.samples.get();
        let i = self.next.get();
        samples[i] = cost_ns.max(1);
        self.samples.set(samples);
        self.next.set((i + 1) % PEEK_SAMPLES);
    }

    /// Whether a window that must peek may run, with windows of up to
    /// `max_ns`: yes if a peek fits in its share of the window (or is not
    /// measured yet), or if a probe is due. Returns `false` for a refused
    /// window, which the caller counts.
    pub(crate) fn admits(&self, max_ns: u64) -> bool {
        let cheap = self
            .cost_ns()
            .is_none_or(|cost| cost.saturating_mul(PEEK_COST_SHARE) <= max_ns);
        if cheap {
            self.refused.set(0);
            self.gap.set(0);
            return true;
        }
        let refused = self.refused.get() + 1;
        let gap = self.gap.get().max(1);
        if refused > gap {
            // A probe: run this window to measure again, and wait twice
            // as long before the next one if peeks still cost too much.
            self.refused.set(0);
            self.gap.set((gap * 2).min(PEEK_PROBE_MAX_GAP));
            return true;
        }
        self.refused.set(refused);
        self.gap.set(gap);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX_NS: u64 = 32_768;
    const CHEAP: u64 = 500;
    const DEAR: u64 = 9_000;

    #[test]
    fn an_unmeasured_gate_admits() {
        let gate = PeekGate::default();
        assert_eq!(gate.cost_ns(), None);
        assert!(gate.admits(MAX_NS));
    }

    #[test]
    fn one_inflated_sample_is_outvoted_by_the_next_cheap_one() {
        let gate = PeekGate::default();
        gate.record(DEAR);
        assert!(!gate.admits(MAX_NS), "one dear peek refuses a window");
        assert!(gate.admits(MAX_NS), "and the next window probes again");
        gate.record(CHEAP);
        assert_eq!(gate.cost_ns(), Some(CHEAP));
        assert!(gate.admits(MAX_NS));
    }

    #[test]
    fn probes_back_off_to_one_window_in_64_while_peeks_stay_dear() {
        let gate = PeekGate::default();
        gate.record(DEAR);
        let mut gaps = Vec::new();
        let mut refused = 0;
        for _ in 0..400 {
            if gate.admits(MAX_NS) {
                gaps.push(refused);
                refused = 0;
                gate.record(DEAR);
            } else {
                refused += 1;
            }
        }
        assert_eq!(gaps[..7], [1, 2, 4, 8, 16, 32, 64]);
        assert!(gaps[7..].iter().all(|&g| g == 64), "{gaps:?}");
    }

    #[test]
    fn the_estimate_is_the_cheapest_of_the_last_eight() {
        let gate = PeekGate::default();
        gate.record(CHEAP);
        for _ in 0..PEEK_SAMPLES - 1 {
            gate.record(DEAR);
        }
        assert_eq!(gate.cost_ns(), Some(CHEAP));
        gate.record(DEAR);
        assert_eq!(gate.cost_ns(), Some(DEAR), "the cheap one aged out");
    }
}
