//! One iteration of the loop, `AioContext::poll`, read top to bottom: take
//! work a polled handler has at once (no clock reading, no window), or
//! start a [`Pass`] (its number, the clock readings, the timeout) and busy
//! poll; leave poll mode and announce the block only if the loop really
//! blocks, wait, then
//! the dispatch phase (`dispatch.rs`) that an outer loop's `dispatch`
//! shares. Also the two ways the loop asks the monitor: the pass's wait and
//! a zero-timeout wait.

use std::io;
use std::time::Duration;

use crate::AioContext;
use crate::busy_poll::WindowEnd;
use crate::monitor::ReadyEvent;
use crate::notify::Announcement;
use crate::pass::Pass;
use crate::stats::Counter;

impl AioContext {
    /// Runs one iteration of the loop. Returns whether it made progress: a
    /// callback other than the context's own notifier ran.
    ///
    /// With `blocking`, it waits until an fd is ready, a timer expires, a
    /// bottom half is scheduled, or the context is notified; but first, if
    /// polling is on, it busy-polls the handlers that have `poll` callbacks
    /// for up to their poll time. Without `blocking`, it only collects what
    /// is ready now.
    ///
    /// A callback may call `poll` again (a nested iteration): the handler
    /// whose callback is running is not called again until it returns, and
    /// removed handlers are freed by the outermost call, after its dispatch
    /// phase and again as it returns. Nesting is limited to
    /// [`MAX_NESTING`](crate::MAX_NESTING) levels. A panic in a callback
    /// unwinds out of `poll`, and the context stays usable.
    ///
    /// # Errors
    ///
    /// The monitor's error, if its wait failed; nothing has been dispatched
    /// then. An error of kind `Other` if called
    /// [`MAX_NESTING`](crate::MAX_NESTING) levels deep. Monitors retry
    /// `EINTR` themselves. A monitor that fails for good is replaced by the
    /// context's planned fallback, if it has one
    /// ([`ContextBuilder::fallback`](crate::ContextBuilder::fallback)).
    pub fn poll(&self, blocking: bool) -> io::Result<bool> {
        let inner = &*self.inner;
        let _level = inner.nesting.enter()?;
        if inner.nesting.is_outermost() {
            self.upgrade_if_due();
        }
        let mut ready = inner.nesting.ready_list();
        let (mut pass, window) = match self.hit_at_once(&mut ready.events, blocking) {
            Some(hit) => hit,
            None => {
                let pass = self.begin_pass(blocking);
                let window = self.busy_poll(&mut ready.events, &pass)?;
                (pass, window)
            }
        };
        let mut progress = window.user_work;
        pass.now = window.now;
        pass.timeout = match window.end {
            WindowEnd::Hit => Some(0),
            _ => pass.timeout.map(|t| t.saturating_sub(window.spent)),
        };
        if pass.may_block() && inner.window.leave_mode(&mut ready.events) {
            progress = true;
            pass.timeout = Some(0);
        }
        let asked_monitor = self.wait(&mut ready.events, &pass)?;
        // When the wait ended, for adapting poll times: read only if they
        // adapt and the loop did wait.
        pass.waited = if inner.window.is_on() && asked_monitor {
            inner.clock.now_ns()
        } else {
            pass.now
        };

        progress |= self.dispatch_phase(&ready.events, &pass);
        Ok(progress)
    }

    /// Starts a pass: counts it, numbers it, reads the clock if anything
    /// will use the reading, and sets the timeout (zero without
    /// `blocking`).
    fn begin_pass(&self, blocking: bool) -> Pass {
        let inner = &*self.inner;
        // A clock reading costs tens of nanoseconds: with polling off only
        // a blocking pass's timeout needs one, and only when a timer is
        // armed (timers read the clock themselves when they run).
        let start = if inner.window.is_on() || blocking && self.timer_armed() {
            let now = inner.clock.now_ns();
            inner.window.note_clock(now);
            now
        } else {
            0
        };
        let timeout = if blocking {
            self.compute_timeout(start)
        } else {
            Some(0)
        };
        self.pass_at(start, timeout)
    }

    /// Counts and numbers a pass that starts at `start` and may wait for
    /// `timeout`.
    pub(crate) fn pass_at(&self, start: u64, timeout: Option<u64>) -> Pass {
        let inner = &*self.inner;
        inner.counters.bump(Counter::Iterations);
        Pass {
            iteration: inner.nesting.next_iteration(),
            start,
            now: start,
            timeout,
            waited: start,
        }
    }

    /// Whether a timer is armed: the next wait's timeout depends on the
    /// clock.
    fn timer_armed(&self) -> bool {
        self.inner.timers.borrow().next_deadline().is_some()
    }

    /// How long the next wait may block: zero if a bottom half is
    /// scheduled or an operation's completion waits, at most 10 ms if an
    /// idle one is, else until the nearest timer, else forever (`None`).
    pub(crate) fn compute_timeout(&self, now: u64) -> Option<u64> {
        if self.ops_have_completions() {
            return Some(0);
        }
        let bh = self.bh_timeout();
        if bh == Some(0) {
            return bh;
        }
        let timer = self
            .inner
            .timers
            .borrow()
            .next_deadline()
            .map(|deadline| deadline.saturating_sub(now));
        match (bh, timer) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The wait of `pass`: announces the block (if the pass may block),
    /// waits in the monitor (unless a pass that may not block can skip
    /// asking), withdraws the announcement and accepts any notification.
    /// Returns whether the monitor was asked.
    fn wait(&self, events: &mut Vec<ReadyEvent>, pass: &Pass) -> io::Result<bool> {
        let inner = &*self.inner;
        let mut timeout = pass.timeout;
        // A pass that a notification stops from blocking may have run no
        // poll round (a zero poll time: no window), so `poll` callbacks
        // cannot stand in for the monitor: it is asked, without waiting.
        let notified = pass.may_block() && !self.announce(&inner.announcement);
        if notified {
            timeout = Some(0);
        }
        let ask = timeout != Some(0)
            || notified
            || inner.window.needs_wait_now(
                inner.monitor.borrow_mut().pending(),
                pass.now,
                pass.iteration,
                self.has_ops_in_flight(),
                &inner.registry,
            );
        let result = if ask {
            self.note_wait(pass.now, pass.iteration);
            if timeout != Some(0) {
                inner.counters.bump(Counter::BlockingWaits);
            }
            inner
                .monitor
                .borrow_mut()
                .wait(events, timeout.map(Duration::from_nanos))
        } else {
            Ok(())
        };
        let notify = inner.shared.notify_state();
        inner.announcement.withdraw(notify);
        notify.accept();
        match result {
            // A monitor that failed for good hands its registrations to the
            // fallback, which, level-triggered, reports what was ready at
            // the next iteration. A passing error (a signal, a kernel short
            // of resources for a moment) is the caller's to see.
            Err(e) if !is_transient(&e) && self.fall_back(&e) => Ok(ask),
            Err(e) => Err(e),
            Ok(()) => Ok(ask),
        }
    }

    /// A zero-timeout wait at `now`, as part of iteration `iteration`: hands
    /// the monitor's queued requests to the kernel and collects what is
    /// ready. Returns whether it found anything.
    pub(crate) fn wait_now(
        &self,
        ready: &mut Vec<ReadyEvent>,
        iteration: u64,
        now: u64,
    ) -> io::Result<bool> {
        let before = ready.len();
        self.note_wait(now, iteration);
        self.inner
            .monitor
            .borrow_mut()
            .wait(ready, Some(Duration::ZERO))?;
        Ok(ready.len() > before)
    }

    /// Announces a block to notifiers, through `announcement` (`poll`'s or
    /// the outer loop's). Returns `false` if a notification is already
    /// pending: the caller must not block.
    pub(crate) fn announce(&self, announcement: &Announcement) -> bool {
        self.inner.counters.bump(Counter::AnnouncedBlocks);
        announcement.announce(self.inner.shared.notify_state())
    }

    /// Records a monitor wait: counts it, and notes when and in which
    /// iteration it was.
    fn note_wait(&self, now: u64, iteration: u64) {
        self.inner.counters.bump(Counter::Waits);
        self.inner.window.note_wait(now, iteration);
    }
}

/// Whether a monitor's error says to try again rather than that it failed.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}
