//! `Source`: an fd's registration with the context, shared by an
//! [`Async`](crate::Async) and the fd handler that wakes its tasks.
//!
//! The handler is registered on first use, with read and write callbacks,
//! and its interest follows the waiters: a direction is watched from when a
//! task waits on it until an event comes that nobody waits for (the task
//! was woken and has not come back), so a steady stream of reads and waits
//! changes nothing in the monitor, and readiness that no task consumes does
//! not make the loop spin.

use std::cell::{Cell, OnceCell};
use std::io;
use std::os::fd::RawFd;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use aio_core::{AioContext, FdHandler, Interest};

use crate::current;
use crate::waiter::{Fired, Waiter};

/// A direction of an fd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    fn interest(self) -> Interest {
        match self {
            Direction::Read => Interest::READABLE,
            Direction::Write => Interest::WRITABLE,
        }
    }
}

pub(crate) struct Source {
    fd: RawFd,
    /// The context it is registered with, from its first use on.
    ctx: OnceCell<Weak<AioContext>>,
    interest: Cell<Interest>,
    read: Waiter,
    write: Waiter,
}

impl Source {
    pub(crate) fn new(fd: RawFd) -> Rc<Source> {
        Rc::new(Source {
            fd,
            ctx: OnceCell::new(),
            interest: Cell::new(Interest::NONE),
            read: Waiter::default(),
            write: Waiter::default(),
        })
    }

    fn waiter(&self, dir: Direction) -> &Waiter {
        match dir {
            Direction::Read => &self.read,
            Direction::Write => &self.write,
        }
    }

    /// Ready once the fd has been reported ready in `dir` since this task
    /// started waiting; registers the fd on first use.
    pub(crate) fn poll_ready(
        self: &Rc<Self>,
        dir: Direction,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let ctx = match self.context(dir) {
            Ok(ctx) => ctx,
            Err(e) => return Poll::Ready(Err(e)),
        };
        if self.waiter(dir).poll(&ctx, cx).is_ready() {
            return Poll::Ready(Ok(()));
        }
        let wanted = self.interest.get().with(dir.interest());
        if let Err(e) = self.set_interest(&ctx, wanted) {
            return Poll::Ready(Err(e));
        }
        Poll::Pending
    }

    /// The I/O in `dir` succeeded without waiting: an event seen meanwhile
    /// is not needed.
    pub(crate) fn clear(&self, dir: Direction) {
        self.waiter(dir).clear();
    }

    /// The context, registering the fd with it first if need be, watched
    /// in `dir` only.
    fn context(self: &Rc<Self>, dir: Direction) -> io::Result<Rc<AioContext>> {
        current::bound_context(&self.ctx, |ctx| {
            ctx.set_fd_handler(self.fd, Some(self.handler()))?;
            self.interest.set(Interest::BOTH);
            if let Err(e) = self.set_interest(ctx, dir.interest()) {
                let _ = ctx.set_fd_handler(self.fd, None);
                return Err(e);
            }
            Ok(())
        })
    }

    fn handler(self: &Rc<Self>) -> FdHandler {
        let (r, w) = (Rc::downgrade(self), Rc::downgrade(self));
        FdHandler::new()
            .on_read(move |ctx| {
                if let Some(source) = r.upgrade() {
                    source.on_event(ctx, Direction::Read);
                }
            })
            .on_write(move |ctx| {
                if let Some(source) = w.upgrade() {
                    source.on_event(ctx, Direction::Write);
                }
            })
    }

    fn on_event(&self, ctx: &AioContext, dir: Direction) {
        if self.waiter(dir).fire(ctx) == Fired::Unwatched {
            let interest = self.interest.get();
            let other = match dir {
                Direction::Read if interest.is_writable() => Interest::WRITABLE,
                Direction::Write if interest.is_readable() => Interest::READABLE,
                _ => Interest::NONE,
            };
            // A failure leaves the direction watched: a spin at worst, and
            // the fd's next use reports the monitor's error.
            let _ = self.set_interest(ctx, other);
        }
    }

    fn set_interest(&self, ctx: &AioContext, interest: Interest) -> io::Result<()> {
        if interest != self.interest.get() {
            ctx.set_fd_interest(self.fd, interest)?;
            self.interest.set(interest);
        }
        Ok(())
    }

    /// Removes the fd's handler, if it was registered and the context is
    /// still there.
    pub(crate) fn deregister(&self) {
        if let Some(ctx) = self.ctx.get().and_then(Weak::upgrade) {
            let _ = ctx.set_fd_handler(self.fd, None);
        }
    }
}
