//! One iteration of the loop, `AioContext::poll`: compute the timeout, busy
//! poll, leave poll mode and announce the block only if the loop really
//! blocks, wait, then run bottom halves, ready handlers and timers.

use std::io;

use crate::AioContext;
use crate::context::Inner;
use crate::monitor::{Pending, ReadyEvent};
use crate::polling::as_duration;
use crate::stats::Counters;

/// How deep [`AioContext::poll`] may nest: a `poll` called from a callback
/// this many levels down returns an error instead of recursing.
///
/// The loop's own frames take about 1.3 KiB of stack per level in a debug
/// build and 0.6 KiB in a release build (measured with a read callback that
/// nests, on every monitor), so 256 levels cost at most about 350 KiB: safe
/// on a 2 MiB thread stack (the default for spawned threads), with room for
/// the callbacks' own frames. Real programs nest a few levels (waiting for
/// one request inside a callback); a deeper nest is a runaway recursion,
/// which a clear error serves better than a stack overflow.
pub const MAX_NESTING: u32 = 256;

/// The longest a loop that never blocks goes without asking the kernel which
/// fds are ready, when the `poll` callbacks cover every fd.
const FD_CHECK_INTERVAL_NS: u64 = 50_000;

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
    /// phase and again as it returns. Nesting is limited to [`MAX_NESTING`]
    /// levels. A panic
    /// in a callback unwinds out of `poll`, and the context stays usable.
    ///
    /// # Errors
    ///
    /// The monitor's error, if its wait failed; nothing has been dispatched
    /// then. An error of kind `Other` if called [`MAX_NESTING`] levels deep. Monitors retry `EINTR` themselves. A monitor that fails for good
    /// is replaced by the context's planned fallback, if it has one
    /// ([`ContextBuilder::fallback`](crate::ContextBuilder::fallback)).
    pub fn poll(&self, blocking: bool) -> io::Result<bool> {
        let inner = &*self.inner;
        let _level = Level::enter(self)?;
        if inner.depth.get() == 1 {
            self.upgrade_if_due();
        }
        let mut ready = ReadyList::take(inner);
        Counters::bump(&inner.counters.iterations);
        let iteration = inner.iteration.get() + 1;
        inner.iteration.set(iteration);

        // A clock reading costs tens of nanoseconds: a non-blocking
        // iteration with polling off has no use for one (timers read it
        // themselves, and only when one is armed).
        let polling = inner.params.get().max_ns > 0;
        let start = if blocking || polling {
            inner.clock.now_ns()
        } else {
            0
        };
        let mut timeout = if blocking {
            self.compute_timeout(start)
        } else {
            Some(0)
        };
        let mut clock = start;
        let mut progress =
            self.busy_poll(&mut ready.events, &mut timeout, iteration, &mut clock)?;
        if timeout != Some(0) && self.leave_poll_mode(&mut ready.events) {
            progress = true;
            timeout = Some(0);
        }
        let asked_monitor = self.wait(&mut ready.events, timeout, clock, iteration)?;
        // When the wait ended, for adapting poll times: read only if they
        // adapt and the loop did wait.
        let waited = if polling && asked_monitor {
            inner.clock.now_ns()
        } else {
            clock
        };

        progress |= self.run_bottom_halves();
        progress |= self.dispatch_ready(&ready.events, iteration, start, waited);
        progress |= self.dispatch_ops();
        if inner.depth.get() == 1 {
            self.free_deferred();
        }
        progress |= self.run_timers();
        Ok(progress)
    }

    /// How long the next wait may block: zero if a bottom half is
    /// scheduled or an operation's completion waits, at most 10 ms if an idle one is, else until the nearest
    /// timer, else forever (`None`).
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

    /// Announces the block (if the loop may block), waits in the monitor,
    /// withdraws the announcement and accepts any notification. Returns
    /// whether the monitor was asked.
    fn wait(
        &self,
        events: &mut Vec<ReadyEvent>,
        mut timeout: Option<u64>,
        now: u64,
        iteration: u64,
    ) -> io::Result<bool> {
        let inner = &*self.inner;
        let announced = (timeout != Some(0)).then(|| Announced::new(inner));
        if announced.is_some() {
            Counters::bump(&inner.counters.announced_blocks);
        }
        if announced.as_ref().is_some_and(|a| a.already_notified) {
            timeout = Some(0);
        }
        let ask = timeout != Some(0) || self.needs_zero_timeout_wait(now, iteration);
        let result = if ask {
            self.note_wait(now, iteration);
            if timeout != Some(0) {
                Counters::bump(&inner.counters.blocking_waits);
            }
            inner
                .monitor
                .borrow_mut()
                .wait(events, as_duration(timeout))
        } else {
            Ok(())
        };
        drop(announced);
        inner.shared.notify.accept();
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

    /// Whether a non-blocking iteration must ask the kernel what is ready.
    /// Not if the monitor shows that nothing is, nor, for up to
    /// [`FD_CHECK_INTERVAL_NS`] at a time, if every watched fd's work shows
    /// in a `poll` callback (the loop just asked them): a system call saved
    /// per iteration, as QEMU does, with a bound on how long an fd event
    /// that a `poll` callback does not report can wait.
    fn needs_zero_timeout_wait(&self, now: u64, iteration: u64) -> bool {
        let pending = self.inner.monitor.borrow_mut().pending();
        match pending {
            Pending::No => false,
            Pending::Yes => true,
            // A peek in this iteration's poll window just asked.
            _ if self.inner.last_wait_iteration.get() == iteration => false,
            Pending::Unknown | Pending::Submit => {
                now.saturating_sub(self.inner.last_wait.get()) >= FD_CHECK_INTERVAL_NS
                    || !self.polling_covers_every_fd()
            }
        }
    }
}

/// Whether a monitor's error says to try again rather than that it failed.
fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

/// One level of `poll` (or `dispatch`) on the stack; the outermost frees
/// deferred deletions when it ends, also when a callback panics.
pub(crate) struct Level<'a> {
    ctx: &'a AioContext,
}

impl<'a> Level<'a> {
    /// Enters one level deeper; refused at [`MAX_NESTING`] levels.
    pub(crate) fn enter(ctx: &'a AioContext) -> io::Result<Level<'a>> {
        let depth = ctx.inner.depth.get();
        if depth >= MAX_NESTING {
            return Err(io::Error::other(format!(
                "poll nested {depth} levels deep, the limit (aio_core::MAX_NESTING)"
            )));
        }
        ctx.inner.depth.set(depth + 1);
        Ok(Level { ctx })
    }
}

impl Drop for Level<'_> {
    fn drop(&mut self) {
        let depth = self.ctx.inner.depth.get() - 1;
        self.ctx.inner.depth.set(depth);
        if depth == 0 {
            self.ctx.free_deferred();
        }
    }
}

/// The ready list of one level, borrowed from the context's pool and given
/// back (emptied, capacity kept) when the level ends.
struct ReadyList<'a> {
    inner: &'a Inner,
    events: Vec<ReadyEvent>,
}

impl<'a> ReadyList<'a> {
    fn take(inner: &'a Inner) -> ReadyList<'a> {
        let events = inner.ready_lists.borrow_mut().pop().unwrap_or_default();
        ReadyList { inner, events }
    }
}

impl Drop for ReadyList<'_> {
    fn drop(&mut self) {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        self.inner.ready_lists.borrow_mut().push(events);
    }
}

/// A block announced to notifiers; withdrawn when dropped.
struct Announced<'a> {
    inner: &'a Inner,
    already_notified: bool,
}

impl<'a> Announced<'a> {
    fn new(inner: &'a Inner) -> Announced<'a> {
        let already_notified = !inner.shared.notify.announce();
        Announced {
            inner,
            already_notified,
        }
    }
}

impl Drop for Announced<'_> {
    fn drop(&mut self) {
        self.inner.shared.notify.withdraw();
    }
}
