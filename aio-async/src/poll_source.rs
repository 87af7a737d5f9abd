//! `PollSource`: a cheap check that the loop's adaptive busy polling calls
//! while a task waits on it, so that an async consumer of a ring is served
//! as fast as a `poll` callback, with no eventfd write.

use std::cell::{OnceCell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::io;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use aio_core::{AioContext, EventNotifier, FdHandler};

use crate::current;

type Check = Box<dyn FnMut() -> bool>;
type Hook = Box<dyn FnMut()>;

/// A source of work that a task awaits with [`ready`](PollSource::ready):
/// `check` says, cheaply and without side effects, whether there is work
/// (a ring's index moved, an atomic was set).
///
/// While a task waits, the loop calls `check` in its busy-poll window (the
/// source is a handler with a `poll` callback on the context), and wakes
/// the task when it says yes: no system call on either side. When the loop
/// is about to block instead, its [`notifier`](PollSource::notifier) is
/// the way to wake it: the producer sets it when the consumer may be
/// blocked. The `poll_begin` / `poll_end` hooks tell the producer when
/// that is, so that it notifies only then (the virtio scheme: the consumer
/// turns notifications off while it polls, and on again before it blocks;
/// the loop calls `check` once more after `poll_end`, so an item pushed in
/// between is not missed).
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::sync::{Arc, atomic::{AtomicU64, Ordering}};
/// use aio_async::{PollSource, Runtime};
///
/// # use aio::prelude::*;
/// // A real monitor: the notifier is an fd that the loop watches.
/// let rt = Runtime::new(AioContext::new()?);
/// let produced = Arc::new(AtomicU64::new(0));
/// let p = produced.clone();
/// let source = PollSource::new(move || p.load(Ordering::Acquire) > 0)?;
/// let notifier = source.notifier();
/// let producer = std::thread::spawn(move || {
///     produced.fetch_add(1, Ordering::Release);
///     notifier.set().unwrap(); // polling is off here: always notify
/// });
/// rt.block_on(source.ready())??;
/// producer.join().unwrap();
/// # Ok(())
/// # }
/// ```
pub struct PollSource {
    shared: Rc<Shared>,
    notifier: Arc<EventNotifier>,
}

struct Shared {
    /// The waiting task's waker, while one waits.
    waker: RefCell<Option<Waker>>,
    check: RefCell<Check>,
    begin: RefCell<Option<Hook>>,
    end: RefCell<Option<Hook>>,
    /// The context it is registered with, from its first wait on.
    ctx: OnceCell<Weak<AioContext>>,
}

impl PollSource {
    /// A source whose work `check` detects.
    ///
    /// # Errors
    ///
    /// If its notifier (an eventfd) cannot be made.
    pub fn new(check: impl FnMut() -> bool + 'static) -> io::Result<PollSource> {
        Ok(PollSource {
            shared: Rc::new(Shared {
                waker: RefCell::new(None),
                check: RefCell::new(Box::new(check)),
                begin: RefCell::new(None),
                end: RefCell::new(None),
                ctx: OnceCell::new(),
            }),
            notifier: Arc::new(EventNotifier::new()?),
        })
    }

    /// Runs `f` when the loop starts busy polling the source (the producer
    /// may stop notifying). Takes effect if set before the first wait.
    pub fn on_poll_begin(self, f: impl FnMut() + 'static) -> PollSource {
        *self.shared.begin.borrow_mut() = Some(Box::new(f));
        self
    }

    /// Runs `f` when the loop stops busy polling the source, before it
    /// blocks (the producer must notify again). Takes effect if set before
    /// the first wait.
    pub fn on_poll_end(self, f: impl FnMut() + 'static) -> PollSource {
        *self.shared.end.borrow_mut() = Some(Box::new(f));
        self
    }

    /// The notifier that wakes the loop when it blocks: `Send + Sync`, for
    /// the producer.
    pub fn notifier(&self) -> Arc<EventNotifier> {
        Arc::clone(&self.notifier)
    }

    /// Waits until `check` says there is work (at once if it does now).
    ///
    /// # Errors
    ///
    /// If the source cannot be registered, or its context is gone.
    pub async fn ready(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// The poll form of [`ready`](PollSource::ready).
    ///
    /// # Errors
    ///
    /// As for `ready`.
    pub fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.shared.check() {
            self.shared.waker.borrow_mut().take();
            return Poll::Ready(Ok(()));
        }
        if let Err(e) = self.context() {
            return Poll::Ready(Err(e));
        }
        // Armed before the loop looks again: its next `check` (busy
        // polling, the last look before it blocks, or the notifier's
        // event) wakes this task if there is work by then.
        let mut waker = self.shared.waker.borrow_mut();
        match &mut *waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn context(&self) -> io::Result<Rc<AioContext>> {
        current::bound_context(&self.shared.ctx, |ctx| {
            ctx.set_fd_handler(&*self.notifier, Some(self.handler()))
        })
    }

    fn handler(&self) -> FdHandler {
        let shared = Rc::downgrade(&self.shared);
        let notifier = Arc::clone(&self.notifier);
        let (check, ready) = (shared.clone(), shared.clone());
        let (begin, end) = (shared.clone(), shared.clone());
        FdHandler::new()
            .on_read(move |_ctx| {
                // Cleared first, then checked: work pushed before a
                // notification that this clears is seen by the check, and
                // a notification after it leaves the notifier readable.
                let _ = notifier.test_and_clear();
                if let Some(s) = shared.upgrade()
                    && s.is_waiting()
                    && s.check()
                {
                    s.wake();
                }
            })
            .on_poll(
                move || check.upgrade().is_some_and(|s| s.is_waiting() && s.check()),
                move |_ctx| {
                    if let Some(s) = ready.upgrade() {
                        s.wake();
                    }
                },
            )
            .on_poll_begin(move || run_hook(&begin, |s| &s.begin))
            .on_poll_end(move || run_hook(&end, |s| &s.end))
    }
}

impl Shared {
    /// The user's check; `false` while it is running already (a check that
    /// polls the loop).
    fn check(&self) -> bool {
        self.check.try_borrow_mut().is_ok_and(|mut c| (*c)())
    }

    fn is_waiting(&self) -> bool {
        self.waker.borrow().is_some()
    }

    /// Wakes the waiting task, if one waits.
    fn wake(&self) {
        let waker = self.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

fn run_hook(shared: &Weak<Shared>, hook: impl Fn(&Shared) -> &RefCell<Option<Hook>>) {
    if let Some(s) = shared.upgrade()
        && let Ok(mut hook) = hook(&s).try_borrow_mut()
        && let Some(f) = hook.as_mut()
    {
        f();
    }
}

impl Drop for PollSource {
    fn drop(&mut self) {
        if let Some(ctx) = self.shared.ctx.get().and_then(Weak::upgrade) {
            let _ = ctx.set_fd_handler(&*self.notifier, None);
        }
    }
}

impl fmt::Debug for PollSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PollSource")
            .field("registered", &self.shared.ctx.get().is_some())
            .finish_non_exhaustive()
    }
}
