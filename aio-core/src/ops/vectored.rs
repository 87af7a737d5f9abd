//! Vectored reads and writes at an offset: several buffers, one request
//! (`preadv` / `pwritev`). Short transfers are resubmitted for the rest,
//! from the first buffer not yet full, as for the single-buffer forms.

use std::io;
use std::os::fd::RawFd;

use super::buf::{IoBuf, IoBufMut};
use super::request::OpRequest;
use super::table::{OpLogic, Step};
use super::{OpHandle, outcome};
use crate::AioContext;
use crate::fd::FdSource;

/// The most buffers one request carries (`IOV_MAX`); more take several.
const MAX_IOVECS: usize = 1024;

/// Fills `iovecs` with what is left of `bufs` (pointer, length) after the
/// first `done` bytes: the buffers not yet full, the first from where it
/// stopped.
fn remaining(
    iovecs: &mut Vec<libc::iovec>,
    done: usize,
    bufs: impl Iterator<Item = (*mut u8, usize)>,
) {
    iovecs.clear();
    let mut skip = done;
    for (ptr, len) in bufs {
        if skip >= len {
            skip -= len;
            continue;
        }
        iovecs.push(libc::iovec {
            // Inside the buffer: `skip < len`.
            iov_base: ptr.wrapping_add(skip).cast(),
            iov_len: len - skip,
        });
        skip = 0;
        if iovecs.len() == MAX_IOVECS {
            break;
        }
    }
}

/// A vectored read.
struct ReadvAt<B, F> {
    fd: RawFd,
    offset: u64,
    done_bytes: usize,
    total: usize,
    error: Option<i32>,
    iovecs: Vec<libc::iovec>,
    bufs: Vec<B>,
    done: F,
}

impl<B, F> OpLogic for ReadvAt<B, F>
where
    B: IoBufMut,
    F: FnOnce(&AioContext, io::Result<usize>, Vec<B>) + 'static,
{
    fn request(&mut self) -> OpRequest {
        let bufs = self.bufs.iter_mut().map(|b| (b.as_mut_ptr(), b.capacity()));
        remaining(&mut self.iovecs, self.done_bytes, bufs);
        OpRequest::Readv {
            fd: self.fd,
            iov: self.iovecs.as_ptr(),
            iovcnt: self.iovecs.len() as u32,
            offset: self.offset + self.done_bytes as u64,
        }
    }

    fn step(&mut self, result: i32) -> Step {
        let (done, error, step) = super::file::transfer(
            self.done_bytes,
            self.total,
            result,
            super::file::EndOfFile::Stops,
        );
        (self.done_bytes, self.error) = (done, error);
        step
    }

    fn finish(mut self, ctx: &AioContext) {
        let mut left = self.done_bytes;
        for buf in &mut self.bufs {
            let n = left.min(buf.capacity());
            // SAFETY: the reads filled the buffers in order from the
            // start: this one's first `n` bytes are written.
            unsafe { buf.set_filled(n) };
            left -= n;
        }
        (self.done)(ctx, outcome(self.done_bytes, self.error), self.bufs);
    }
}

/// A vectored write.
struct WritevAt<B, F> {
    fd: RawFd,
    offset: u64,
    done_bytes: usize,
    total: usize,
    error: Option<i32>,
    iovecs: Vec<libc::iovec>,
    bufs: Vec<B>,
    done: F,
}

impl<B, F> OpLogic for WritevAt<B, F>
where
    B: IoBuf,
    F: FnOnce(&AioContext, io::Result<usize>, Vec<B>) + 'static,
{
    fn request(&mut self) -> OpRequest {
        let bufs = self.bufs.iter().map(|b| (b.as_ptr().cast_mut(), b.len()));
        remaining(&mut self.iovecs, self.done_bytes, bufs);
        OpRequest::Writev {
            fd: self.fd,
            iov: self.iovecs.as_ptr(),
            iovcnt: self.iovecs.len() as u32,
            offset: self.offset + self.done_bytes as u64,
        }
    }

    fn step(&mut self, result: i32) -> Step {
        let (done, error, step) = super::file::transfer(
            self.done_bytes,
            self.total,
            result,
            super::file::EndOfFile::IsAnError,
        );
        (self.done_bytes, self.error) = (done, error);
        step
    }

    fn finish(self, ctx: &AioContext) {
        (self.done)(ctx, outcome(self.done_bytes, self.error), self.bufs);
    }
}

impl AioContext {
    /// Reads from `fd` at `offset` into `bufs`, filling each in turn, and
    /// calls `done` with the total read and the buffers; as
    /// [`read_at`](AioContext::read_at) otherwise.
    pub fn readv_at<B, F>(&self, fd: impl FdSource, bufs: Vec<B>, offset: u64, done: F) -> OpHandle
    where
        B: IoBufMut,
        F: FnOnce(&AioContext, io::Result<usize>, Vec<B>) + 'static,
    {
        let total = bufs.iter().map(IoBufMut::capacity).sum();
        self.start_op(ReadvAt {
            fd: fd.raw_fd(),
            offset,
            done_bytes: 0,
            total,
            error: None,
            iovecs: Vec::with_capacity(bufs.len().min(MAX_IOVECS)),
            bufs,
            done,
        })
    }

    /// Writes `bufs`, in order, to `fd` at `offset`, and calls `done` with
    /// the total written and the buffers; as
    /// [`write_at`](AioContext::write_at) otherwise.
    pub fn writev_at<B, F>(&self, fd: impl FdSource, bufs: Vec<B>, offset: u64, done: F) -> OpHandle
    where
        B: IoBuf,
        F: FnOnce(&AioContext, io::Result<usize>, Vec<B>) + 'static,
    {
        let total = bufs.iter().map(IoBuf::len).sum();
        self.start_op(WritevAt {
            fd: fd.raw_fd(),
            offset,
            done_bytes: 0,
            total,
            error: None,
            iovecs: Vec::with_capacity(bufs.len().min(MAX_IOVECS)),
            bufs,
            done,
        })
    }
}
