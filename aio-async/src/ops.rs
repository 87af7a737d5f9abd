//! Operation futures over the context's operations (reads and writes at
//! an offset, vectored ones, syncs): on the loop's io_uring ring, or on the
//! context's thread pool where there is none.
//!
//! Each future starts its operation at its first poll. Dropping it before
//! the operation completed cancels the operation; the buffer stays with
//! the context until the kernel (or the pool's worker) is done with it,
//! and is dropped then.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use aio_core::{AioContext, IoBuf, IoBufMut, OpHandle};

use crate::current;

/// Where an operation's completion lands.
struct Slot<T> {
    output: RefCell<Option<T>>,
    waker: RefCell<Option<Waker>>,
}

impl<T> Slot<T> {
    fn complete(&self, output: T) {
        *self.output.borrow_mut() = Some(output);
        let waker = self.waker.borrow_mut().take();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

type Start<'a, T> = Box<dyn FnOnce(&AioContext, RawFd, Rc<Slot<T>>) -> OpHandle + 'a>;

/// An operation's future: its output is the result, with the buffers
/// (given back also on failure). See the [module docs](self).
#[must_use = "an operation starts when its future is first polled"]
pub struct Op<'fd, T> {
    fd: BorrowedFd<'fd>,
    start: Option<Start<'static, T>>,
    slot: Rc<Slot<T>>,
    handle: Option<OpHandle>,
}

impl<'fd, T: 'static> Op<'fd, T> {
    fn new(
        fd: BorrowedFd<'fd>,
        start: impl FnOnce(&AioContext, RawFd, Rc<Slot<T>>) -> OpHandle + 'static,
    ) -> Op<'fd, T> {
        Op {
            fd,
            start: Some(Box::new(start)),
            slot: Rc::new(Slot {
                output: RefCell::new(None),
                waker: RefCell::new(None),
            }),
            handle: None,
        }
    }
}

impl<T: 'static> Future for Op<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = &mut *self;
        if let Some(output) = this.slot.output.borrow_mut().take() {
            this.handle = None;
            return Poll::Ready(output);
        }
        *this.slot.waker.borrow_mut() = Some(cx.waker().clone());
        if let Some(start) = this.start.take() {
            let exec = current::expect_executor("an operation");
            let fd = this.fd.as_raw_fd();
            this.handle = Some(start(exec.context(), fd, Rc::clone(&this.slot)));
        }
        Poll::Pending
    }
}

impl<T> Drop for Op<'_, T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take()
            && self.slot.output.borrow().is_none()
        {
            handle.cancel();
        }
    }
}

impl<T> fmt::Debug for Op<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Op")
            .field("fd", &self.fd)
            .field("started", &self.start.is_none())
            .field("done", &self.slot.output.borrow().is_some())
            .finish()
    }
}

/// Reads from `fd` at `offset` into `buf` (until it is full or the file
/// ends); gives the count and the buffer. See
/// [`AioContext::read_at`](aio_core::AioContext::read_at).
pub fn read_at<B: IoBufMut>(fd: &impl AsFd, buf: B, offset: u64) -> Op<'_, (io::Result<usize>, B)> {
    Op::new(fd.as_fd(), move |ctx, fd, slot| {
        ctx.read_at(fd, buf, offset, move |_, n, buf| slot.complete((n, buf)))
    })
}

/// Writes all of `buf` to `fd` at `offset`; gives the count and the
/// buffer. See [`AioContext::write_at`](aio_core::AioContext::write_at).
pub fn write_at<B: IoBuf>(fd: &impl AsFd, buf: B, offset: u64) -> Op<'_, (io::Result<usize>, B)> {
    Op::new(fd.as_fd(), move |ctx, fd, slot| {
        ctx.write_at(fd, buf, offset, move |_, n, buf| slot.complete((n, buf)))
    })
}

/// Reads from `fd` at `offset` into `bufs`, filling each in turn. See
/// [`AioContext::readv_at`](aio_core::AioContext::readv_at).
pub fn readv_at<B: IoBufMut>(
    fd: &impl AsFd,
    bufs: Vec<B>,
    offset: u64,
) -> Op<'_, (io::Result<usize>, Vec<B>)> {
    Op::new(fd.as_fd(), move |ctx, fd, slot| {
        ctx.readv_at(fd, bufs, offset, move |_, n, bufs| slot.complete((n, bufs)))
    })
}

/// Writes `bufs`, in order, to `fd` at `offset`. See
/// [`AioContext::writev_at`](aio_core::AioContext::writev_at).
pub fn writev_at<B: IoBuf>(
    fd: &impl AsFd,
    bufs: Vec<B>,
    offset: u64,
) -> Op<'_, (io::Result<usize>, Vec<B>)> {
    Op::new(fd.as_fd(), move |ctx, fd, slot| {
        ctx.writev_at(fd, bufs, offset, move |_, n, bufs| slot.complete((n, bufs)))
    })
}

/// Flushes `fd`'s data and metadata to stable storage.
pub fn fsync(fd: &impl AsFd) -> Op<'_, io::Result<()>> {
    Op::new(fd.as_fd(), |ctx, fd, slot| {
        ctx.fsync(fd, move |_, r| slot.complete(r))
    })
}

/// Flushes `fd`'s data (and the metadata needed to read it back).
pub fn fdatasync(fd: &impl AsFd) -> Op<'_, io::Result<()>> {
    Op::new(fd.as_fd(), |ctx, fd, slot| {
        ctx.fdatasync(fd, move |_, r| slot.complete(r))
    })
}
