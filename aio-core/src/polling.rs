//! Adaptive busy polling: the polled list, poll mode (`poll_begin` /
//! `poll_end`), the busy-poll window, and the per-handler poll time.
//!
//! Before it blocks, the loop spins on the `poll` callbacks of the handlers
//! that have shown work before, for as long as the largest of their poll
//! times. Each handler's poll time grows while polling would have caught its
//! events and shrinks when the loop had to block for longer than polling is
//! allowed to last, so a fast notifier and a slow disk do not fight over one
//! shared value.

use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::AioContext;
use crate::handler::Node;
use crate::monitor::{Pending, Readiness, ReadyEvent};
use crate::peek::PEEK_INTERVAL_NS;
use crate::stats::Counters;

/// Rounds of the busy-poll window between two readings of the clock.
const ROUNDS_PER_CLOCK_READ: u32 = 4;

/// Where a poll time starts when it first grows from zero.
const POLL_START_NS: u64 = 4_000;

/// How long a polled handler whose `poll` finds no work stays on the polled
/// list, where the monitor can show readiness by itself.
pub(crate) const POLL_IDLE_NS: u64 = 7_000_000_000;

/// Tuning of adaptive busy polling ([`AioContext::set_poll_params`]).
///
/// # When polling starts, and when it never does
///
/// Each handler on the polled list has a poll time, which starts at zero;
/// the loop busy-polls for the largest of them before it blocks. After each
/// iteration that dispatched the handler, its poll time is adapted to how
/// long the loop blocked before the handler's event came (`block_ns`;
/// [`adapt`](PollParams::adapt) is the rule):
///
/// * it **grows** (from 0 to 4 us, then by `grow`, up to `max_ns`) only
///   when the loop blocked longer than the current poll time but **less
///   than `max_ns`**: polling that long would have caught the event;
/// * it **shrinks** (divided by `shrink`, or reset to 0) when the loop
///   blocked longer than `max_ns`: polling could not have caught it.
///
/// So a handler whose events come further apart than `max_ns` never gets a
/// poll time, and the loop never polls for it. That includes a
/// request/response client on another thread or machine: the gap between
/// two requests is at least one round trip, and that costs the client's
/// wake-up too. On KVM guests whose idle vCPUs halt, a blocking round trip
/// between two threads costs 40 to 105 us, above [`IOTHREAD`](Self::IOTHREAD)'s
/// 32 768 ns ceiling: there a loop with `IOTHREAD` serving one such client
/// never polls. Measure the gap your events come at (the
/// [`Stats`](crate::Stats) poll hits and misses say whether polling
/// catches them) and choose `max_ns` above it, knowing that a window that
/// finds nothing burns up to `max_ns` of CPU before the loop blocks.
///
/// ```
/// use aio_core::PollParams;
///
/// assert_eq!(PollParams::default(), PollParams::OFF);
/// assert_eq!(PollParams::IOTHREAD.max_ns, 32_768);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PollParams {
    /// The longest a busy-poll window may last, in nanoseconds; 0 turns
    /// polling off.
    pub max_ns: u64,
    /// The factor a poll time grows by (0 means 2).
    pub grow: u64,
    /// The divisor a poll time shrinks by (0 means reset to 0).
    pub shrink: u64,
}

impl PollParams {
    /// No busy polling: the default of a bare context, as in QEMU.
    pub const OFF: PollParams = PollParams {
        max_ns: 0,
        grow: 0,
        shrink: 0,
    };

    /// What QEMU's I/O threads use: windows of up to 32 768 ns.
    pub const IOTHREAD: PollParams = PollParams {
        max_ns: 32_768,
        grow: 0,
        shrink: 0,
    };

    /// The poll time that follows `ns` after an iteration that blocked for
    /// `block_ns`.
    ///
    /// ```
    /// use aio_core::PollParams;
    ///
    /// let p = PollParams::IOTHREAD;
    /// assert_eq!(p.adapt(0, 1_000), 4_000);       // starts at 4 us
    /// assert_eq!(p.adapt(4_000, 5_000), 8_000);   // grows by 2
    /// assert_eq!(p.adapt(8_000, 5_000), 8_000);   // blocked less: keep
    /// assert_eq!(p.adapt(16_384, 20_000), 32_768);
    /// assert_eq!(p.adapt(32_768, 40_000), 0);     // blocked too long: reset
    /// ```
    pub fn adapt(&self, ns: u64, block_ns: u64) -> u64 {
        if block_ns <= ns {
            ns
        } else if block_ns > self.max_ns {
            ns.checked_div(self.shrink).unwrap_or(0)
        } else if ns < self.max_ns && block_ns < self.max_ns {
            let factor = if self.grow == 0 { 2 } else { self.grow };
            let grown = if ns == 0 {
                POLL_START_NS
            } else {
                ns.saturating_mul(factor)
            };
            grown.min(self.max_ns)
        } else {
            ns
        }
    }
}

impl AioContext {
    /// Sets the busy-polling parameters; every handler's poll time starts
    /// again from zero. `max_ns = 0` turns polling off.
    pub fn set_poll_params(&self, params: PollParams) {
        self.inner.params.set(params);
        for node in self.inner.polled.borrow().iter() {
            node.polled.ns.set(0);
        }
    }

    /// The busy-polling parameters.
    pub fn poll_params(&self) -> PollParams {
        self.inner.params.get()
    }

    /// Busy-polls before the wait, if polling is on and possible. A hit puts
    /// `poll_ready` entries (or, from a peek at the monitor, ready fds) on
    /// `ready` and makes the timeout zero; the time spent is taken off the
    /// timeout. `clock` holds the latest reading of the clock, and is kept
    /// up to date. Returns whether a user handler's `poll` said yes.
    pub(crate) fn busy_poll(
        &self,
        ready: &mut Vec<ReadyEvent>,
        timeout: &mut Option<u64>,
        iteration: u64,
        clock: &mut u64,
    ) -> io::Result<bool> {
        let inner = &self.inner;
        if *timeout == Some(0) {
            return Ok(self.poll_once(ready, *clock));
        }
        let window = self.largest_poll_ns().min(timeout.unwrap_or(u64::MAX));
        if window == 0 {
            return Ok(false);
        }
        // Requests the monitor holds for the kernel go in a wait of their
        // own before the window, so that what a peek is measured to cost is
        // what asking costs, not what submitting does.
        let submitted = inner.monitor.borrow_mut().pending() == Pending::Submit;
        let mut hit = submitted && self.submit(ready, iteration)?;
        if submitted {
            *clock = inner.clock.now_ns();
        }
        let start = *clock;
        let mut progress = false;
        if !hit {
            let peeks = self.window_needs_peek();
            if peeks && !inner.peek_gate.admits(inner.params.get().max_ns) {
                Counters::bump(&inner.counters.poll_refusals);
                return Ok(false);
            }
            self.enter_poll_mode();
            let (found, user_work) = self.spin(ready, window, peeks, iteration, clock)?;
            hit = found;
            progress = user_work;
        }
        // A hit ends the iteration's waiting, so the reading it was found
        // after is good enough (eviction counts in seconds).
        let now = *clock;
        if hit {
            Counters::bump(&inner.counters.poll_hits);
            *timeout = Some(0);
        } else {
            Counters::bump(&inner.counters.poll_misses);
        }
        if self.evict_idle_handlers(ready, now) {
            progress = true;
            *timeout = Some(0);
        }
        if let Some(t) = timeout {
            *t = t.saturating_sub(now.saturating_sub(start));
        }
        Ok(progress)
    }

    /// The busy-poll window: rounds over the polled handlers' `poll`
    /// callbacks, the notifier's flag and the monitor, until one shows
    /// work or `window` ns have passed since `clock`; with `peeks`, it also
    /// asks the monitor with zero-timeout waits. Returns whether it found
    /// work, and whether a user's `poll` callback said yes; `clock` holds
    /// the last reading.
    fn spin(
        &self,
        ready: &mut Vec<ReadyEvent>,
        window: u64,
        peeks: bool,
        iteration: u64,
        clock: &mut u64,
    ) -> io::Result<(bool, bool)> {
        let inner = &self.inner;
        let start = *clock;
        let mut last_peek = None;
        let mut user_work = false;
        let mut rounds = 0u32;
        loop {
            let (found, user) = self.poll_handlers_once(ready, start);
            user_work |= user;
            let pending = inner.monitor.borrow_mut().pending();
            if found
                || inner.shared.notify.is_notified()
                || pending == Pending::Yes
                || self.ops_have_completions()
            {
                return Ok((true, user_work));
            }
            if pending == Pending::Submit && self.submit(ready, iteration)? {
                *clock = inner.clock.now_ns(); // after that wait
                return Ok((true, user_work));
            }
            // A clock reading costs more than a round of cheap checks: look
            // at the time every few rounds only.
            rounds = rounds.wrapping_add(1);
            if !rounds.is_multiple_of(ROUNDS_PER_CLOCK_READ) {
                continue;
            }
            let now = inner.clock.now_ns();
            *clock = now;
            if now.saturating_sub(start) >= window {
                return Ok((false, user_work));
            }
            if peeks && last_peek.is_none_or(|at| now.saturating_sub(at) >= PEEK_INTERVAL_NS) {
                last_peek = Some(now);
                let (found, after) = self.peek(ready, iteration, now)?;
                *clock = after;
                if found {
                    return Ok((true, user_work));
                }
            }
        }
    }

    /// With a zero timeout there is no window to poll in, but what the poll
    /// callbacks see is ready now: ask each polled handler once, without
    /// entering poll mode.
    fn poll_once(&self, ready: &mut Vec<ReadyEvent>, now: u64) -> bool {
        if self.inner.params.get().max_ns == 0 || self.inner.polled.borrow().is_empty() {
            return false;
        }
        self.poll_handlers_once(ready, now).1
    }

    /// Whether every watched fd's work shows without asking the kernel: each
    /// watched handler is on the polled list and polling is on, so its
    /// `poll` callback is asked every iteration (or no user fd is watched at
    /// all, and the notifier's flag tells everything). A zero-timeout wait
    /// may then be skipped for a while.
    pub(crate) fn polling_covers_every_fd(&self) -> bool {
        let polling = self.inner.params.get().max_ns > 0;
        let registry = self.inner.registry.borrow();
        registry.all_watched_listed()
            && (polling && registry.all_watched_have_poll()
                || self.inner.polled.borrow().is_empty())
    }

    /// Leaves poll mode before the loop blocks: `poll_end`, then each `poll`
    /// once more, since work can arrive between the last poll and the
    /// moment the device turns its notifications back on. Returns whether
    /// that last look found work.
    pub(crate) fn leave_poll_mode(&self, ready: &mut Vec<ReadyEvent>) -> bool {
        if !self.inner.poll_mode.replace(false) {
            return false;
        }
        let mut progress = false;
        self.for_each_polled(|node| {
            node.end_polling();
            if node.check_poll() {
                push_poll_ready(ready, node);
                progress |= node.counts_as_progress();
            }
        });
        progress
    }

    /// Puts a handler that just became ready on the polled list. Handlers
    /// without a `poll` callback join too: their poll time sets how long the
    /// window peeks at the monitor for them.
    pub(crate) fn list_polled(&self, node: &Rc<Node>) {
        if !node.counts_as_progress() || node.deleted.get() || node.polled.listed.get() {
            return;
        }
        self.inner.registry.borrow_mut().set_listed(node, true);
        node.polled.idle_deadline.set(0);
        self.inner.polled.borrow_mut().push(Rc::clone(node));
        if self.inner.poll_mode.get() {
            node.begin_polling();
        }
    }

    /// Takes a handler off the polled list, ending its poll mode.
    pub(crate) fn unlist_polled(&self, node: &Rc<Node>) {
        if !node.polled.listed.get() {
            return;
        }
        self.inner.registry.borrow_mut().set_listed(node, false);
        self.inner
            .polled
            .borrow_mut()
            .retain(|n| !Rc::ptr_eq(n, node));
        node.end_polling();
    }

    /// Adapts the poll time of a polled handler that was just dispatched,
    /// at `now`. For a handler without a `poll` callback, being dispatched is
    /// its progress: it keeps it on the polled list.
    pub(crate) fn adapt_poll_time(&self, node: &Node, block_ns: u64, now: u64) {
        if node.polled.listed.get() {
            let params = self.inner.params.get();
            node.polled
                .ns
                .set(params.adapt(node.polled.ns.get(), block_ns));
            if !node.has_poll() {
                node.polled
                    .idle_deadline
                    .set(now.saturating_add(POLL_IDLE_NS));
            }
        }
    }

    fn largest_poll_ns(&self) -> u64 {
        if self.inner.params.get().max_ns == 0 {
            return 0;
        }
        let polled = self.inner.polled.borrow();
        polled.iter().map(|n| n.polled.ns.get()).max().unwrap_or(0)
    }

    fn enter_poll_mode(&self) {
        if !self.inner.poll_mode.replace(true) {
            self.for_each_polled(|node| node.begin_polling());
        }
    }

    /// One round over the polled handlers. Returns whether any `poll` said
    /// yes, and whether one of them was a user's handler.
    fn poll_handlers_once(&self, ready: &mut Vec<ReadyEvent>, now: u64) -> (bool, bool) {
        let held_back = self.is_external_disabled();
        let (mut found, mut user_work) = (false, false);
        self.for_each_polled(|node| {
            if held_back && node.is_external() {
                return;
            }
            if node.check_poll() {
                push_poll_ready(ready, node);
                node.polled
                    .idle_deadline
                    .set(now.saturating_add(POLL_IDLE_NS));
                found = true;
                user_work |= node.counts_as_progress();
            }
        });
        (found, user_work)
    }

    /// Drops handlers that made no progress (a `poll` hit, or for those
    /// without a `poll` callback, a dispatch) for [`POLL_IDLE_NS`] from the
    /// polled list, so that they stop costing a check per round and keeping
    /// the window long. They rejoin when they are next dispatched. An
    /// evicted handler is not starved: non-blocking iterations ask the
    /// kernel again once some watched handler is off the list.
    fn evict_idle_handlers(&self, ready: &mut Vec<ReadyEvent>, now: u64) -> bool {
        let mut progress = false;
        let mut i = 0;
        loop {
            let node = match self.inner.polled.borrow().get(i) {
                Some(node) => Rc::clone(node),
                None => return progress,
            };
            let deadline = node.polled.idle_deadline.get();
            if deadline == 0 {
                node.polled
                    .idle_deadline
                    .set(now.saturating_add(POLL_IDLE_NS));
            } else if now > deadline {
                self.unlist_polled(&node);
                if node.check_poll() {
                    push_poll_ready(ready, &node);
                    progress |= node.counts_as_progress();
                }
                continue; // the next node moved into slot i
            }
            i += 1;
        }
    }

    /// Calls `f` on each live polled handler. The list is re-borrowed for
    /// every node, so `f` may change it.
    fn for_each_polled(&self, mut f: impl FnMut(&Rc<Node>)) {
        let mut i = 0;
        loop {
            let node = match self.inner.polled.borrow().get(i) {
                Some(node) => Rc::clone(node),
                None => return,
            };
            i += 1;
            if !node.deleted.get() {
                f(&node);
            }
        }
    }
}

fn push_poll_ready(ready: &mut Vec<ReadyEvent>, node: &Node) {
    ready.push(ReadyEvent {
        token: node.token(),
        readiness: Readiness::POLL_READY,
    });
}

/// A timeout in nanoseconds (`None`: forever) as a monitor takes it.
pub(crate) fn as_duration(timeout: Option<u64>) -> Option<Duration> {
    timeout.map(Duration::from_nanos)
}
