//! Driving a context from another event loop, the way QEMU nests its
//! contexts in the glib main loop: the outer loop calls
//! [`prepare`](AioContext::prepare), sleeps on
//! [`loop_fd`](AioContext::loop_fd) for at most the timeout it returned,
//! then calls [`check`](AioContext::check) and, if that says so,
//! [`dispatch`](AioContext::dispatch).
//!
//! There is no busy polling in this mode (an outer loop cannot be asked to
//! spin); `poll_begin`/`poll_end` pairs are closed in `prepare`. The notify
//! protocol holds: `prepare` announces that the outer loop may sleep, so a
//! remote notification rings the doorbell, whose fd the monitor watches, and
//! the loop fd becomes readable.

use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::AioContext;
use crate::pass::Pass;
use crate::stats::Counter;

impl AioContext {
    /// A file descriptor that is readable whenever the context may have
    /// work: for another event loop to sleep on between
    /// [`prepare`](AioContext::prepare) and [`check`](AioContext::check).
    ///
    /// It is a duplicate of the monitor's own fd (epoll's, io_uring's ring,
    /// the poll monitor's epoll mirror), so it stays valid whatever happens
    /// to the context; but if the context moves to another monitor (an
    /// upgrade in `prepare`, or a fallback), it stops telling anything: take
    /// a new one when [`monitor_moves`](AioContext::monitor_moves) changes.
    ///
    /// # Errors
    ///
    /// `Unsupported` if the monitor has no such fd; out of fds.
    pub fn loop_fd(&self) -> io::Result<OwnedFd> {
        self.inner
            .monitor
            .borrow_mut()
            .loop_fd()?
            .try_clone_to_owned()
    }

    /// How many times the context has moved to another monitor (an upgrade,
    /// a fallback, [`set_monitor`](AioContext::set_monitor)).
    pub fn monitor_moves(&self) -> u64 {
        self.inner.counters.get(Counter::MonitorMoves)
    }

    /// Gets the context ready for the outer loop to sleep: returns how long
    /// it may sleep on [`loop_fd`](AioContext::loop_fd) (`None`: until the
    /// fd is readable; zero: work is pending). Call [`check`](AioContext::check)
    /// after the sleep.
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if called from a callback of this context; the
    /// monitor's error.
    pub fn prepare(&self) -> io::Result<Option<Duration>> {
        self.refuse_inside_poll("prepare")?;
        let inner = &self.inner;
        let outer = &inner.outer;
        outer.announcement().withdraw(inner.shared.notify_state());
        self.upgrade_if_due();
        let now = inner.clock.now_ns();
        let mut timeout = self.compute_timeout(now);
        let mut ready = outer.take_ready();
        if inner.window.leave_mode(&mut ready) {
            timeout = Some(0);
        }
        // Announce before the last look: a notification after it sees the
        // announcement and rings the doorbell.
        if !self.announce(outer.announcement()) {
            timeout = Some(0);
        }
        let collected = self.wait_now(&mut ready, inner.nesting.iteration(), now);
        if !ready.is_empty() {
            timeout = Some(0);
        }
        outer.put_ready(ready);
        collected?;
        Ok(timeout.map(Duration::from_nanos))
    }

    /// After the outer loop's sleep: collects what is ready and says whether
    /// [`dispatch`](AioContext::dispatch) has anything to do.
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if called from a callback of this context; the
    /// monitor's error.
    pub fn check(&self) -> io::Result<bool> {
        self.refuse_inside_poll("check")?;
        let inner = &self.inner;
        let outer = &inner.outer;
        let notify = inner.shared.notify_state();
        outer.announcement().withdraw(notify);
        notify.accept();
        let now = inner.clock.now_ns();
        let mut ready = outer.take_ready();
        let collected = self.wait_now(&mut ready, inner.nesting.iteration(), now);
        let has_work = !ready.is_empty()
            || self.bh_timeout().is_some()
            || self.ops_have_completions()
            || inner
                .timers
                .borrow()
                .next_deadline()
                .is_some_and(|d| d <= now);
        outer.put_ready(ready);
        collected?;
        Ok(has_work)
    }

    /// Runs what [`check`](AioContext::check) found: bottom halves, ready
    /// handlers, completed operations, expired timers; the same dispatch
    /// phase as [`poll`](AioContext::poll)'s. Returns whether a callback
    /// other than the context's own notifier ran. Callbacks may call
    /// [`poll`](AioContext::poll) as usual.
    ///
    /// # Errors
    ///
    /// `ResourceBusy` if called from a callback of this context.
    pub fn dispatch(&self) -> io::Result<bool> {
        self.refuse_inside_poll("dispatch")?;
        let inner = &self.inner;
        let _level = inner.nesting.enter()?;
        let pass = Pass::outer(inner.nesting.next_iteration());
        let ready = inner.outer.take_ready();
        let progress = self.dispatch_phase(&ready, &pass);
        inner.outer.recycle(ready);
        Ok(progress)
    }

    fn refuse_inside_poll(&self, what: &str) -> io::Result<()> {
        if self.inner.nesting.inside_poll() {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!("{what} cannot be called from a callback of the same context"),
            ));
        }
        Ok(())
    }
}
