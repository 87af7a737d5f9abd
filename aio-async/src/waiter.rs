//! `Waiter`: one task waiting for a level-triggered event (an fd
//! direction), woken from a loop callback.
//!
//! Tasks run in the bottom-half phase, before the ready handlers of the
//! same iteration are dispatched, and that readiness was seen by the wait
//! that came before the task ran: a task that read until `EAGAIN` and then
//! started waiting would be woken by the stale report of the data it just
//! read. So a waiter armed during an iteration ignores that iteration's
//! events; the level-triggered monitor reports the fd again at the next
//! wait if it is still ready, and nothing is lost.

use std::cell::{Cell, RefCell};
use std::task::{Context, Poll, Waker};

use aio_core::AioContext;

/// What a callback's event did to a waiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fired {
    /// The waiting task was woken.
    Woken,
    /// Seen before the waiter was armed: ignored.
    Stale,
    /// Nobody waits: the caller should stop watching, so that readiness
    /// nobody consumes does not make the loop spin.
    Unwatched,
}

#[derive(Default)]
pub(crate) struct Waiter {
    waker: RefCell<Option<Waker>>,
    /// The iteration in which the waiter was armed, while armed.
    armed_at: Cell<Option<u64>>,
    /// An event came since the waiter was armed, and the task has not
    /// looked yet.
    fired: Cell<bool>,
}

impl Waiter {
    /// Ready if an event came since the waiter was armed; else arms it
    /// (keeping the iteration of the first arming) with `cx`'s waker.
    pub(crate) fn poll(&self, ctx: &AioContext, cx: &mut Context<'_>) -> Poll<()> {
        if self.fired.replace(false) {
            return Poll::Ready(());
        }
        let mut waker = self.waker.borrow_mut();
        match &mut *waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        if self.armed_at.get().is_none() {
            self.armed_at.set(Some(iteration(ctx)));
        }
        Poll::Pending
    }

    /// An event from a callback of the loop.
    pub(crate) fn fire(&self, ctx: &AioContext) -> Fired {
        let Some(armed_at) = self.armed_at.get() else {
            return Fired::Unwatched;
        };
        if armed_at == iteration(ctx) {
            return Fired::Stale;
        }
        self.armed_at.set(None);
        self.fired.set(true);
        let waker = self.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
        Fired::Woken
    }

    /// Forgets an event the task did not need (its I/O succeeded without
    /// waiting).
    pub(crate) fn clear(&self) {
        self.fired.set(false);
    }
}

/// The number of the loop iteration in progress.
fn iteration(ctx: &AioContext) -> u64 {
    ctx.stats().iterations
}
