//! Reads, writes and syncs at an offset: the operations a storage target
//! needs. A short transfer is resubmitted for the rest (as QEMU's block
//! layer does), as is `EAGAIN`; a read stops early only at the end of the
//! file. Transfers longer than one request can carry are split the same way.

use std::io;
use std::os::fd::RawFd;

use super::buf::{IoBuf, IoBufMut};
use super::request::OpRequest;
use super::table::{OpLogic, Step};
use super::{OpHandle, outcome};
use crate::AioContext;
use crate::fd::FdSource;

/// The most one request carries; a longer transfer takes several.
const MAX_REQUEST: usize = 1 << 30;

/// A read into `buf` at `offset`.
struct ReadAt<B, F> {
    fd: RawFd,
    offset: u64,
    done_bytes: usize,
    error: Option<i32>,
    buf: B,
    done: F,
}

impl<B, F> OpLogic for ReadAt<B, F>
where
    B: IoBufMut,
    F: FnOnce(&AioContext, io::Result<usize>, B) + 'static,
{
    fn request(&mut self) -> OpRequest {
        let left = self.buf.capacity() - self.done_bytes;
        OpRequest::Read {
            fd: self.fd,
            // The pointer stays inside the buffer: `done_bytes <= capacity`.
            buf: self.buf.as_mut_ptr().wrapping_add(self.done_bytes),
            len: left.min(MAX_REQUEST) as u32,
            offset: self.offset + self.done_bytes as u64,
        }
    }

    fn step(&mut self, result: i32) -> Step {
        let (done_bytes, error, step) = transfer(
            self.done_bytes,
            self.buf.capacity(),
            result,
            EndOfFile::Stops,
        );
        (self.done_bytes, self.error) = (done_bytes, error);
        step
    }

    fn finish(mut self, ctx: &AioContext) {
        // SAFETY: the kernel (or a worker) wrote the first `done_bytes`
        // bytes: each result counted bytes written from the start on.
        unsafe { self.buf.set_filled(self.done_bytes) };
        (self.done)(ctx, outcome(self.done_bytes, self.error), self.buf);
    }
}

/// A write of `buf` at `offset`.
struct WriteAt<B, F> {
    fd: RawFd,
    offset: u64,
    done_bytes: usize,
    error: Option<i32>,
    buf: B,
    done: F,
}

impl<B, F> OpLogic for WriteAt<B, F>
where
    B: IoBuf,
    F: FnOnce(&AioContext, io::Result<usize>, B) + 'static,
{
    fn request(&mut self) -> OpRequest {
        let left = self.buf.len() - self.done_bytes;
        OpRequest::Write {
            fd: self.fd,
            buf: self.buf.as_ptr().wrapping_add(self.done_bytes),
            len: left.min(MAX_REQUEST) as u32,
            offset: self.offset + self.done_bytes as u64,
        }
    }

    fn step(&mut self, result: i32) -> Step {
        let (done_bytes, error, step) = transfer(
            self.done_bytes,
            self.buf.len(),
            result,
            EndOfFile::IsAnError,
        );
        (self.done_bytes, self.error) = (done_bytes, error);
        step
    }

    fn finish(self, ctx: &AioContext) {
        (self.done)(ctx, outcome(self.done_bytes, self.error), self.buf);
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

/// What a transfer that returns 0 bytes means.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum EndOfFile {
    /// A read at the end of the file: done, short.
    Stops,
    /// A write that made no progress: `EIO`, rather than looping forever.
    IsAnError,
}

/// One result of a transfer that has moved `done` of `total` bytes: the
/// new count, the error if it failed, and whether to go on.
pub(super) fn transfer(
    done: usize,
    total: usize,
    result: i32,
    eof: EndOfFile,
) -> (usize, Option<i32>, Step) {
    match result {
        r if r == -libc::EAGAIN || r == -libc::EINTR => (done, None, Step::Again),
        r if r < 0 => (done, Some(-r), Step::Done),
        0 if done < total && eof == EndOfFile::IsAnError => (done, Some(libc::EIO), Step::Done),
        0 => (done, None, Step::Done),
        n => {
            let done = (done + n as usize).min(total);
            let step = if done < total {
                Step::Again
            } else {
                Step::Done
            };
            (done, None, step)
        }
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
        self.start_op(ReadAt {
            fd: fd.raw_fd(),
            offset,
            done_bytes: 0,
            error: None,
            buf,
            done,
        })
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
        self.start_op(WriteAt {
            fd: fd.raw_fd(),
            offset,
            done_bytes: 0,
            error: None,
            buf,
            done,
        })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_goes_on_until_done_and_stops_at_the_end_of_the_file() {
        assert_eq!(transfer(0, 10, 4, EndOfFile::Stops), (4, None, Step::Again));
        assert_eq!(transfer(4, 10, 6, EndOfFile::Stops), (10, None, Step::Done));
        assert_eq!(transfer(4, 10, 0, EndOfFile::Stops), (4, None, Step::Done));
        assert_eq!(
            transfer(4, 10, -libc::EAGAIN, EndOfFile::Stops),
            (4, None, Step::Again)
        );
        assert_eq!(
            transfer(4, 10, -libc::EBADF, EndOfFile::Stops),
            (4, Some(libc::EBADF), Step::Done)
        );
        assert_eq!(
            transfer(4, 10, 0, EndOfFile::IsAnError),
            (4, Some(libc::EIO), Step::Done)
        );
        assert_eq!(
            transfer(0, 0, 0, EndOfFile::IsAnError),
            (0, None, Step::Done)
        );
    }
}
