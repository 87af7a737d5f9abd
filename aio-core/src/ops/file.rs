//! Reads, writes and syncs at an offset: the operations a storage target
//! needs. A short transfer is resubmitted for the rest (as QEMU's block
//! layer does), as is `EAGAIN`; a read stops early only at the end of the
//! file. Transfers longer than one request can carry are split the same way.

use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;

use super::buf::{IoBuf, IoBufMut};
use super::request::OpRequest;
use super::table::{OpLogic, Step};
use super::transfer::{Direction, Progress, Reading, Writing};
use super::{OpHandle, outcome};
use crate::AioContext;
use crate::fd::FdSource;

/// The most one request carries; a longer transfer takes several.
const MAX_REQUEST: usize = 1 << 30;

/// A read into, or a write of, `buf` at `offset` (`D` says which).
struct At<D, B, F> {
    fd: RawFd,
    offset: u64,
    progress: Progress,
    buf: B,
    done: F,
    direction: PhantomData<D>,
}

impl<D, B, F> At<D, B, F>
where
    D: Direction<B>,
{
    fn new(fd: RawFd, buf: B, offset: u64, done: F) -> At<D, B, F> {
        At {
            fd,
            offset,
            progress: Progress::of(D::extent(&buf)),
            buf,
            done,
            direction: PhantomData,
        }
    }
}

impl<D, B, F> OpLogic for At<D, B, F>
where
    D: Direction<B>,
    B: 'static,
    F: FnOnce(&AioContext, io::Result<usize>, B) + 'static,
{
    fn request(&mut self) -> OpRequest {
        let done = self.progress.done;
        let left = self.progress.total - done;
        D::request(
            self.fd,
            // Inside the buffer: `done <= total`.
            D::start(&mut self.buf).wrapping_add(done),
            left.min(MAX_REQUEST) as u32,
            self.offset + done as u64,
        )
    }

    fn step(&mut self, result: i32) -> Step {
        self.progress.step(result, D::EOF)
    }

    fn finish(mut self, ctx: &AioContext) {
        // SAFETY: each result counted bytes moved from the start of the
        // buffer on: the first `done` are written (for a read).
        unsafe { D::moved(&mut self.buf, self.progress.done) };
        (self.done)(ctx, self.progress.outcome(), self.buf);
    }
}

/// An `fsync` or `fdatasync`.
struct Sync<F> {
    fd: RawFd,
    datasync: bool,
    error: Option<i32>,
    done: F,
}

impl<F> OpLogic for Sync<F>
where
    F: FnOnce(&AioContext, io::Result<()>) + 'static,
{
    fn request(&mut self) -> OpRequest {
        OpRequest::Fsync {
            fd: self.fd,
            datasync: self.datasync,
        }
    }

    fn step(&mut self, result: i32) -> Step {
        if result == -libc::EAGAIN || result == -libc::EINTR {
            return Step::Again;
        }
        self.error = (result < 0).then_some(-result);
        Step::Done
    }

    fn finish(self, ctx: &AioContext) {
        (self.done)(ctx, outcome(0, self.error).map(drop));
    }
}

impl AioContext {
    /// Reads into `buf` from `fd` at `offset`, and calls `done` on the home
    /// thread with the number of bytes read (fewer than the buffer holds
    /// only at the end of the file) and the buffer. A `Vec<u8>` is filled
    /// up to its capacity and its length set to the count.
    ///
    /// On io_uring the read goes on the context's own ring, with the next
    /// wait; elsewhere to the context's thread pool (with the `aio` facade)
    /// or its fallback engine. `done` always runs, once, also when the read
    /// fails or is [cancelled](OpHandle::cancel) (`ECANCELED`); a bad fd
    /// gives `EBADF`, a context with no engine `EOPNOTSUPP`.
    ///
    /// ```
    /// use std::{cell::RefCell, io::Write, rc::Rc};
    /// use aio_core::{AioContext, testing::{SleepMonitor, InlineEngine}};
    ///
    /// let ctx = aio_core::ContextBuilder::new(Box::new(SleepMonitor::new()))
    ///     .ops_fallback(|_remote| Box::new(InlineEngine::new()))
    ///     .build()?;
    /// let mut file = tempfile_in_tmp()?;
    /// file.write_all(b"hello")?;
    /// let got = Rc::new(RefCell::new(None));
    /// let g = got.clone();
    /// ctx.read_at(&file, Vec::with_capacity(16), 0, move |_, n, buf| {
    ///     *g.borrow_mut() = Some((n.unwrap(), buf));
    /// });
    /// ctx.run_until(|| got.borrow().is_some())?;
    /// assert_eq!(got.borrow().as_ref().unwrap(), &(5, b"hello".to_vec()));
    /// # fn tempfile_in_tmp() -> std::io::Result<std::fs::File> {
    /// #     let path = std::env::temp_dir().join(format!("aio-doc-{}", std::process::id()));
    /// #     let file = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&path)?;
    /// #     std::fs::remove_file(&path)?;
    /// #     Ok(file)
    /// # }
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_at<B, F>(&self, fd: impl FdSource, buf: B, offset: u64, done: F) -> OpHandle
    where
        B: IoBufMut,
        F: FnOnce(&AioContext, io::Result<usize>, B) + 'static,
    {
        self.start_op(At::<Reading, _, _>::new(fd.raw_fd(), buf, offset, done))
    }

    /// Writes all of `buf` to `fd` at `offset`, and calls `done` on the
    /// home thread with the number of bytes written and the buffer; as
    /// [`read_at`](AioContext::read_at) otherwise. A write that makes no
    /// progress fails with `EIO` rather than looping.
    pub fn write_at<B, F>(&self, fd: impl FdSource, buf: B, offset: u64, done: F) -> OpHandle
    where
        B: IoBuf,
        F: FnOnce(&AioContext, io::Result<usize>, B) + 'static,
    {
        self.start_op(At::<Writing, _, _>::new(fd.raw_fd(), buf, offset, done))
    }

    /// Flushes `fd`'s data and metadata to stable storage (`fsync(2)`),
    /// then calls `done` on the home thread; as
    /// [`read_at`](AioContext::read_at) otherwise.
    pub fn fsync<F>(&self, fd: impl FdSource, done: F) -> OpHandle
    where
        F: FnOnce(&AioContext, io::Result<()>) + 'static,
    {
        self.start_op(Sync {
            fd: fd.raw_fd(),
            datasync: false,
            error: None,
            done,
        })
    }

    /// Flushes `fd`'s data (and the metadata needed to read it back) to
    /// stable storage (`fdatasync(2)`), then calls `done`; as
    /// [`fsync`](AioContext::fsync) otherwise.
    pub fn fdatasync<F>(&self, fd: impl FdSource, done: F) -> OpHandle
    where
        F: FnOnce(&AioContext, io::Result<()>) + 'static,
    {
        self.start_op(Sync {
            fd: fd.raw_fd(),
            datasync: true,
            error: None,
            done,
        })
    }
}
