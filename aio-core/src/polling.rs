//! Adaptive busy polling's state, owned by [`PollWindow`]: the polled list,
//! poll mode (`poll_begin` / `poll_end`), the per-handler poll time and its
//! rule ([`PollParams`]), what peeks at the monitor cost, and when the
//! monitor was last asked. The window itself, the loop that spins in it, is
//! in `busy_poll.rs`.
//!
//! Before it blocks, the loop spins on the `poll` callbacks of the handlers
//! that have shown work before, for as long as the largest of their poll
//! times. Each handler's poll time grows while polling would have caught its
//! events and shrinks when the loop had to block for longer than polling is
//! allowed to last, so a fast notifier and a slow disk do not fight over one
//! shared value.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use crate::handler::Node;
use crate::monitor::{Pending, Readiness, ReadyEvent};
use crate::peek::PeekGate;
use crate::registry::Registry;

/// The longest a loop that never blocks goes without asking the kernel which
/// fds are ready, when the `poll` callbacks cover every fd.
const FD_CHECK_INTERVAL_NS: u64 = 50_000;

/// Where a poll time starts when it first grows from zero.
const POLL_START_NS: u64 = 4_000;

/// How many passes in a row may take a hit from their first poll round
/// without reading the clock (a reading costs more than the rest of such a
/// pass on some machines: 30 to 40 ns on a KVM guest).
const PASSES_WITHOUT_CLOCK: u32 = 4;

/// How long a polled handler whose `poll` finds no work stays on the polled
/// list, where the monitor can show readiness by itself.
pub(crate) const POLL_IDLE_NS: u64 = 7_000_000_000;

/// Tuning of adaptive busy polling ([`AioContext::set_poll_params`](crate::AioContext::set_poll_params)).
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

/// The busy-polling state of a context: which handlers are polled, whether
/// they are in poll mode, the parameters their poll times adapt by, what a
/// peek at the monitor costs, and when the monitor was last asked.
///
/// Callbacks (`poll`, `poll_begin`, `poll_end`) run with no borrow held, so
/// they may change the list (remove a handler, register one).
#[derive(Default)]
pub(crate) struct PollWindow {
    /// Handlers with a `poll` callback that have become ready at least once.
    polled: RefCell<Vec<Rc<Node>>>,
    /// Whether `poll_begin` has been called on the polled handlers.
    poll_mode: Cell<bool>,
    /// The poll time of the operations in flight, which the window waits
    /// for as it does for a polled handler: it adapts, by the same rule,
    /// whenever completions are dispatched.
    ops_ns: Cell<u64>,
    params: Cell<PollParams>,
    /// What peeks at the monitor cost, and whether a window may peek.
    peek_gate: PeekGate,
    /// When, and in which iteration, the monitor was last asked what is
    /// ready.
    last_wait: Cell<u64>,
    last_wait_iteration: Cell<u64>,
    /// The clock reading of the last pass that read it at its start, and
    /// how many passes since went without one.
    last_clock: Cell<u64>,
    passes_without_clock: Cell<u32>,
    /// No polled handler's idle deadline fell before this when the list
    /// was last looked at; `None` once a handler joins (its deadline is
    /// still to be set). Deadlines only move on from there, so an
    /// eviction check before it has nothing to do. (A deadline set from a
    /// reused clock reading can fall a little earlier, by that reading's
    /// age: its eviction comes that much later, in seconds.)
    next_eviction: Cell<Option<u64>>,
}

impl PollWindow {
    pub(crate) fn new(params: PollParams) -> PollWindow {
        PollWindow {
            params: Cell::new(params),
            ..PollWindow::default()
        }
    }

    pub(crate) fn params(&self) -> PollParams {
        self.params.get()
    }

    /// Sets the parameters; every handler's poll time starts again from
    /// zero.
    pub(crate) fn set_params(&self, params: PollParams) {
        self.params.set(params);
        self.ops_ns.set(0);
        for node in self.polled.borrow().iter() {
            node.polled.ns.set(0);
        }
    }

    /// Whether polling is on (`max_ns > 0`).
    pub(crate) fn is_on(&self) -> bool {
        self.params.get().max_ns > 0
    }

    /// How many handlers are polled, and the largest poll time among them.
    pub(crate) fn polled_stats(&self) -> (usize, u64) {
        let polled = self.polled.borrow();
        let max = polled.iter().map(|n| n.polled.ns.get()).max().unwrap_or(0);
        (polled.len(), max)
    }

    /// What a peek at the monitor costs, about (`None` until one is
    /// measured).
    pub(crate) fn peek_cost_ns(&self) -> Option<u64> {
        self.peek_gate.cost_ns()
    }

    /// How long the window may last within `timeout` (`None`: no limit):
    /// the largest poll time (the operations' among them if some are in
    /// flight), 0 if polling is off.
    pub(crate) fn length(&self, timeout: Option<u64>, ops_in_flight: bool) -> u64 {
        if !self.is_on() {
            return 0;
        }
        let polled = self.polled.borrow();
        let largest = polled.iter().map(|n| n.polled.ns.get()).max().unwrap_or(0);
        let ops = if ops_in_flight { self.ops_ns.get() } else { 0 };
        largest.max(ops).min(timeout.unwrap_or(u64::MAX))
    }

    /// Adapts the operations' poll time as completions are dispatched,
    /// after the loop blocked for `block_ns`.
    pub(crate) fn adapt_ops(&self, block_ns: u64) {
        if self.is_on() {
            let params = self.params.get();
            self.ops_ns.set(params.adapt(self.ops_ns.get(), block_ns));
        }
    }

    /// Whether a window that must peek may run (see [`PeekGate::admits`]).
    pub(crate) fn admits_peeks(&self) -> bool {
        self.peek_gate.admits(self.params.get().max_ns)
    }

    /// Records what one peek cost.
    pub(crate) fn record_peek(&self, cost_ns: u64) {
        self.peek_gate.record(cost_ns);
    }

    /// Records a monitor wait: when, and in which iteration.
    /// Notes the clock reading a pass started with.
    pub(crate) fn note_clock(&self, now: u64) {
        self.last_clock.set(now);
        self.passes_without_clock.set(0);
    }

    /// The last pass's clock reading, for a pass that takes a hit at once
    /// and so has no use for a fresh one; `None` once
    /// [`PASSES_WITHOUT_CLOCK`] passes in a row have gone without, so that
    /// what the readings bound (how long the kernel goes unasked, when an
    /// idle handler leaves the polled list) stays bounded by that many
    /// passes.
    pub(crate) fn reuse_clock(&self) -> Option<u64> {
        let passes = self.passes_without_clock.get();
        (passes < PASSES_WITHOUT_CLOCK).then(|| {
            self.passes_without_clock.set(passes + 1);
            self.last_clock.get()
        })
    }

    pub(crate) fn note_wait(&self, now: u64, iteration: u64) {
        self.last_wait.set(now);
        self.last_wait_iteration.set(iteration);
    }

    /// Whether an iteration that may not block must still ask the monitor
    /// (a zero-timeout wait), at `now`, in iteration `iteration`, given
    /// what the monitor says is `pending` and whether operations are in
    /// flight.
    ///
    /// Not if the monitor shows that nothing is, nor if a peek in this
    /// iteration's window just asked, nor, for up to
    /// [`FD_CHECK_INTERVAL_NS`] at a time, if every watched fd's work shows
    /// in a `poll` callback (the loop just asked them): a system call saved
    /// per iteration, as QEMU does, with a bound on how long an fd event
    /// that a `poll` callback does not report can wait. A monitor that
    /// shows readiness in user space is held to the same rule (see
    /// [`kernel_can_wait`](PollWindow::kernel_can_wait)).
    pub(crate) fn needs_wait_now(
        &self,
        pending: Pending,
        now: u64,
        iteration: u64,
        ops_in_flight: bool,
        registry: &RefCell<Registry>,
    ) -> bool {
        match pending {
            Pending::No => false,
            Pending::Yes => !self.kernel_can_wait(now, ops_in_flight, &registry.borrow()),
            _ if self.last_wait_iteration.get() == iteration => false,
            Pending::Submit => !self.kernel_can_wait(now, ops_in_flight, &registry.borrow()),
            Pending::Unknown => self.fd_check_due(now, &registry.borrow()),
        }
    }

    /// Whether what a monitor that shows readiness has for the kernel or
    /// from it (its "yes", the requests it holds) can wait for the next fd
    /// check, at `now`: no operation is in flight (their completions and
    /// requests have no `poll` callback to stand in for them), some
    /// handler's `poll` callback stands in for every watched fd, and the
    /// check is not due. Then its "yes" is no more urgent than epoll's
    /// silence, and a re-armed poll request would only report, at once,
    /// work that the `poll` callback serves anyway (an eventfd that a
    /// sender writes for every message stays readable while polling
    /// serves the messages).
    pub(crate) fn kernel_can_wait(
        &self,
        now: u64,
        ops_in_flight: bool,
        registry: &Registry,
    ) -> bool {
        !ops_in_flight && !self.polled.borrow().is_empty() && !self.fd_check_due(now, registry)
    }

    /// Whether the kernel must be asked about the watched fds at `now`:
    /// the last wait is [`FD_CHECK_INTERVAL_NS`] old, or some watched fd's
    /// work would not show in a `poll` callback.
    fn fd_check_due(&self, now: u64, registry: &Registry) -> bool {
        now.saturating_sub(self.last_wait.get()) >= FD_CHECK_INTERVAL_NS
            || !self.covers_every_fd(registry)
    }

    /// Whether every watched fd's work shows without asking the kernel: each
    /// watched handler is on the polled list and polling is on, so its
    /// `poll` callback is asked every iteration (or no user fd is watched at
    /// all, and the notifier's flag tells everything).
    fn covers_every_fd(&self, registry: &Registry) -> bool {
        registry.all_watched_listed()
            && (self.is_on() && registry.all_watched_have_poll() || self.polled.borrow().is_empty())
    }

    /// Enters poll mode: `poll_begin` on each polled handler.
    pub(crate) fn enter_mode(&self) {
        if !self.poll_mode.replace(true) {
            self.for_each(|node| node.begin_polling());
        }
    }

    /// Leaves poll mode before the loop blocks: `poll_end`, then each `poll`
    /// once more, since work can arrive between the last poll and the
    /// moment the device turns its notifications back on. Returns whether
    /// that last look found work.
    pub(crate) fn leave_mode(&self, ready: &mut Vec<ReadyEvent>) -> bool {
        if !self.poll_mode.replace(false) {
            return false;
        }
        let mut progress = false;
        self.for_each(|node| {
            node.end_polling();
            if node.check_poll() {
                push_poll_ready(ready, node);
                progress |= node.counts_as_progress();
            }
        });
        progress
    }

    /// Whether a pass that may not block asks the polled handlers' `poll`
    /// callbacks once: there is no window to poll in, but what they see is
    /// ready now. Yes if polling is on and some handler is polled.
    pub(crate) fn polls_at_once(&self) -> bool {
        self.is_on() && !self.polled.borrow().is_empty()
    }

    /// One round over the polled handlers (external ones not if
    /// `held_back`). Returns whether any `poll` said yes, and whether one
    /// of them was a user's handler.
    pub(crate) fn poll_round(
        &self,
        ready: &mut Vec<ReadyEvent>,
        now: u64,
        held_back: bool,
    ) -> (bool, bool) {
        let (mut found, mut user_work) = (false, false);
        self.for_each(|node| {
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

    /// Puts a handler that just became ready on the polled list. Handlers
    /// without a `poll` callback join too: their poll time sets how long the
    /// window peeks at the monitor for them.
    pub(crate) fn list(&self, node: &Rc<Node>, registry: &RefCell<Registry>) {
        if !node.counts_as_progress() || node.deleted.get() || node.polled.listed.get() {
            return;
        }
        registry.borrow_mut().set_listed(node, true);
        node.polled.idle_deadline.set(0);
        self.next_eviction.set(None);
        self.polled.borrow_mut().push(Rc::clone(node));
        if self.poll_mode.get() {
            node.begin_polling();
        }
    }

    /// Takes a handler off the polled list, ending its poll mode.
    pub(crate) fn unlist(&self, node: &Rc<Node>, registry: &RefCell<Registry>) {
        if !node.polled.listed.get() {
            return;
        }
        registry.borrow_mut().set_listed(node, false);
        self.polled.borrow_mut().retain(|n| !Rc::ptr_eq(n, node));
        node.end_polling();
    }

    /// Adapts the poll time of a polled handler that was just dispatched,
    /// at `now`, after the loop blocked for `block_ns`. For a handler
    /// without a `poll` callback, being dispatched is its progress: it keeps
    /// it on the polled list.
    pub(crate) fn adapt(&self, node: &Node, block_ns: u64, now: u64) {
        if node.polled.listed.get() {
            let params = self.params.get();
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

    /// Drops handlers that made no progress (a `poll` hit, or for those
    /// without a `poll` callback, a dispatch) for [`POLL_IDLE_NS`] from the
    /// polled list, so that they stop costing a check per round and keeping
    /// the window long. They rejoin when they are next dispatched. An
    /// evicted handler is not starved: non-blocking iterations ask the
    /// kernel again once some watched handler is off the list. Returns
    /// whether the last look at an evicted handler found user work.
    pub(crate) fn evict_idle(
        &self,
        ready: &mut Vec<ReadyEvent>,
        now: u64,
        registry: &RefCell<Registry>,
    ) -> bool {
        if self.next_eviction.get().is_some_and(|at| now <= at) {
            return false;
        }
        let mut progress = false;
        let mut earliest = u64::MAX;
        let mut i = 0;
        loop {
            let node = match self.polled.borrow().get(i) {
                Some(node) => Rc::clone(node),
                None => break,
            };
            let deadline = node.polled.idle_deadline.get();
            if deadline == 0 {
                let deadline = now.saturating_add(POLL_IDLE_NS);
                node.polled.idle_deadline.set(deadline);
                earliest = earliest.min(deadline);
            } else if now > deadline {
                self.unlist(&node, registry);
                if node.check_poll() {
                    push_poll_ready(ready, &node);
                    progress |= node.counts_as_progress();
                }
                continue; // the next node moved into slot i
            } else {
                earliest = earliest.min(deadline);
            }
            i += 1;
        }
        self.next_eviction.set(Some(earliest));
        progress
    }

    /// Empties the list without ending poll mode (the context is dropped:
    /// its handlers' polling is ended one by one).
    pub(crate) fn clear(&self) {
        self.polled.borrow_mut().clear();
    }

    /// Calls `f` on each live polled handler. The list is re-borrowed for
    /// every node, so `f` may change it.
    fn for_each(&self, mut f: impl FnMut(&Rc<Node>)) {
        let mut i = 0;
        loop {
            let node = match self.polled.borrow().get(i) {
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
