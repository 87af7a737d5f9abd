//! The busy-poll window of one iteration: before the loop blocks, it spins
//! on the `poll` callbacks of the polled handlers, the notifier's flag, the
//! operations' completions and the monitor, for as long as the largest poll
//! time (see `polling.rs` for the state and the rules it adapts by, and
//! `peek.rs` for when the window may ask the monitor with system calls).

use std::io;

use crate::AioContext;
use crate::monitor::{Pending, ReadyEvent};
use crate::pass::Pass;
use crate::peek::PEEK_INTERVAL_NS;
use crate::polling::PollParams;
use crate::stats::Counter;

/// Rounds of the busy-poll window between two readings of the clock.
const ROUNDS_PER_CLOCK_READ: u32 = 4;

/// How a busy-poll window ended, what it found, and the time it last read.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Window {
    pub(crate) end: WindowEnd,
    /// Whether a user's `poll` callback said yes (progress).
    pub(crate) user_work: bool,
    /// How long the window spun, to take off the timeout.
    pub(crate) spent: u64,
    /// The latest reading of the clock.
    pub(crate) now: u64,
}

/// How a busy-poll window ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WindowEnd {
    /// No window ran: the timeout is zero, polling is off, nothing is
    /// polled, or the peeks it needs cost too much.
    Skipped,
    /// It lasted its whole length and found nothing.
    TimedOut,
    /// It found work: a `poll` callback said yes, the context was notified,
    /// an operation completed, the monitor has events (or a handler's last
    /// `poll` as it left the polled list did): the wait must not block.
    Hit,
}

impl Window {
    fn skipped(now: u64) -> Window {
        Window {
            end: WindowEnd::Skipped,
            user_work: false,
            spent: 0,
            now,
        }
    }
}

impl AioContext {
    /// Sets the busy-polling parameters; every handler's poll time starts
    /// again from zero. `max_ns = 0` turns polling off.
    pub fn set_poll_params(&self, params: PollParams) {
        self.inner.window.set_params(params);
    }

    /// The busy-polling parameters.
    pub fn poll_params(&self) -> PollParams {
        self.inner.window.params()
    }

    /// The start of a blocking pass whose polled handlers have work already
    /// (a loop serving back-to-back requests): one round over their `poll`
    /// callbacks before anything else. If one says yes, the pass does not
    /// block, so it needs no fresh clock reading (it reuses the last, see
    /// `PollWindow::reuse_clock`) and no window: returns the pass and its
    /// window's result. `None` if it cannot be taken that way, or no
    /// callback said yes; the pass then starts as usual.
    pub(crate) fn hit_at_once(
        &self,
        ready: &mut Vec<ReadyEvent>,
        blocking: bool,
    ) -> Option<(Pass, Window)> {
        let inner = &*self.inner;
        let window = &inner.window;
        // A pass that would not run a window does not start one either, and
        // one whose window must peek at the monitor goes through the peek
        // gate's accounting.
        if !blocking
            || !window.polls_at_once()
            || window.length(None, self.has_ops_in_flight()) == 0
            || self.window_needs_peek()
        {
            return None;
        }
        let now = window.reuse_clock()?;
        // Requests that cannot wait for the fd check go with the window's
        // first wait, which this pass would skip.
        if self.must_submit(now) {
            return None;
        }
        window.enter_mode();
        let (found, user_work) = window.poll_round(ready, now, self.is_external_disabled());
        if !found {
            return None;
        }
        inner.counters.bump(Counter::PollHits);
        let window = Window {
            end: WindowEnd::Hit,
            user_work,
            spent: 0,
            now,
        };
        Some((self.pass_at(now, Some(0)), window))
    }

    /// Busy-polls before the wait of `pass`, if polling is on and possible.
    /// Work found goes on `ready`: `poll_ready` entries, or, from a peek at
    /// the monitor, ready fds. A pass that may not block asks each polled
    /// handler's `poll` once instead.
    pub(crate) fn busy_poll(&self, ready: &mut Vec<ReadyEvent>, pass: &Pass) -> io::Result<Window> {
        let inner = &*self.inner;
        let window = &inner.window;
        if !pass.may_block() {
            let user_work = window.polls_at_once()
                && window
                    .poll_round(ready, pass.now, self.is_external_disabled())
                    .1;
            return Ok(Window {
                user_work,
                ..Window::skipped(pass.now)
            });
        }
        let length = window.length(pass.timeout, self.has_ops_in_flight());
        if length == 0 {
            return Ok(Window::skipped(pass.now));
        }
        // Requests the monitor holds for the kernel go in a wait of their
        // own before the window, so that what a peek is measured to cost is
        // what asking costs, not what submitting does.
        let mut now = pass.now;
        let mut end = WindowEnd::TimedOut;
        let mut user_work = false;
        if self.must_submit(now) {
            if self.wait_now(ready, pass.iteration, inner.clock.now_ns())? {
                end = WindowEnd::Hit;
            }
            now = inner.clock.now_ns();
        }
        let start = now;
        if end != WindowEnd::Hit {
            let peeks = self.window_needs_peek();
            if peeks && !window.admits_peeks() {
                inner.counters.bump(Counter::PollRefusals);
                return Ok(Window::skipped(now));
            }
            window.enter_mode();
            (end, user_work, now) = self.spin(ready, start, length, peeks, pass.iteration)?;
        }
        inner.counters.bump(match end {
            WindowEnd::Hit => Counter::PollHits,
            _ => Counter::PollMisses,
        });
        // A hit ends the iteration's waiting, so the reading it was found
        // after is good enough (eviction counts in seconds).
        if window.evict_idle(ready, now, &inner.registry) {
            user_work = true;
            end = WindowEnd::Hit;
        }
        Ok(Window {
            end,
            user_work,
            spent: now.saturating_sub(start),
            now,
        })
    }

    /// The window itself: rounds over the polled handlers' `poll`
    /// callbacks, the notifier's flag and the monitor, until one shows work
    /// or `length` ns have passed since `start`; with `peeks`, it also asks
    /// the monitor with zero-timeout waits. Returns how it ended, whether a
    /// user's `poll` callback said yes, and the last reading of the clock.
    fn spin(
        &self,
        ready: &mut Vec<ReadyEvent>,
        start: u64,
        length: u64,
        peeks: bool,
        iteration: u64,
    ) -> io::Result<(WindowEnd, bool, u64)> {
        let inner = &*self.inner;
        // Nothing the window runs can change this: `poll` callbacks and
        // hooks do not get the context.
        let held_back = self.is_external_disabled();
        // Looked at only when the monitor has news, and again after each
        // clock reading, so that the fd check falls due on time.
        let mut kernel_waits = None;
        let mut now = start;
        let mut last_peek = None;
        let mut user_work = false;
        let mut rounds = 0u32;
        loop {
            let (found, user) = inner.window.poll_round(ready, start, held_back);
            user_work |= user;
            let pending = inner.monitor.borrow_mut().pending();
            let urgent = matches!(pending, Pending::Yes | Pending::Submit)
                && !*kernel_waits.get_or_insert_with(|| self.kernel_can_wait(now));
            if found
                || inner.shared.notify_state().is_notified()
                || pending == Pending::Yes && urgent
                || self.ops_have_completions()
            {
                return Ok((WindowEnd::Hit, user_work, now));
            }
            if pending == Pending::Submit
                && urgent
                && self.wait_now(ready, iteration, inner.clock.now_ns())?
            {
                return Ok((WindowEnd::Hit, user_work, inner.clock.now_ns()));
            }
            // A clock reading costs more than a round of cheap checks: look
            // at the time every few rounds only.
            rounds = rounds.wrapping_add(1);
            if !rounds.is_multiple_of(ROUNDS_PER_CLOCK_READ) {
                continue;
            }
            now = inner.clock.now_ns();
            kernel_waits = None;
            if now.saturating_sub(start) >= length {
                return Ok((WindowEnd::TimedOut, user_work, now));
            }
            if peeks && last_peek.is_none_or(|at| now.saturating_sub(at) >= PEEK_INTERVAL_NS) {
                last_peek = Some(now);
                let found = self.wait_now(ready, iteration, now)?;
                let after = inner.clock.now_ns();
                inner.window.record_peek(after.saturating_sub(now));
                now = after;
                if found {
                    return Ok((WindowEnd::Hit, user_work, now));
                }
            }
        }
    }

    /// Whether the monitor holds requests for the kernel that cannot wait,
    /// at `now`, for the next fd check.
    fn must_submit(&self, now: u64) -> bool {
        self.inner.monitor.borrow_mut().pending() == Pending::Submit && !self.kernel_can_wait(now)
    }

    /// Whether the monitor's "yes" and its queued requests can wait, at
    /// `now`, for the next fd check (see `PollWindow::kernel_can_wait`).
    fn kernel_can_wait(&self, now: u64) -> bool {
        let inner = &*self.inner;
        inner
            .window
            .kernel_can_wait(now, self.has_ops_in_flight(), &inner.registry.borrow())
    }

    /// Whether the window must peek at the monitor with a system call: some
    /// watched handler has no `poll` callback, and the monitor cannot show
    /// readiness by itself.
    fn window_needs_peek(&self) -> bool {
        !self.inner.registry.borrow().all_watched_have_poll()
            && self.inner.monitor.borrow_mut().pending() == Pending::Unknown
    }
}
