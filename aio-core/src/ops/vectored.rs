//! Vectored reads and writes at an offset: several buffers, one request
//! (`preadv` / `pwritev`). Short transfers are resubmitted for the rest,
//! from the first buffer not yet full, as for the single-buffer forms.

use std::io;
use std::marker::PhantomData;
use std::os::fd::RawFd;

use super::OpHandle;
use super::buf::{IoBuf, IoBufMut};
use super::request::OpRequest;
use super::table::{OpLogic, Step};
use super::transfer::{Direction, Progress, Reading, Writing};
use crate::AioContext;
use crate::fd::FdSource;

/// The most buffers one request carries (`IOV_MAX`); more take several.
const MAX_IOVECS: usize = 1024;

/// A vectored read into, or write of, `bufs` at `offset` (`D` says which).
struct VectoredAt<D, B, F> {
    fd: RawFd,
    offset: u64,
    progress: Progress,
    /// What is left of `bufs`, rebuilt for each request in the same
    /// allocation.
    iovecs: Vec<libc::iovec>,
    bufs: Vec<B>,
    done: F,
    direction: PhantomData<D>,
}

impl<D, B, F> VectoredAt<D, B, F>
where
    D: Direction<B>,
{
    fn new(fd: RawFd, bufs: Vec<B>, offset: u64, done: F) -> VectoredAt<D, B, F> {
        VectoredAt {
            fd,
            offset,
            progress: Progress::of(bufs.iter().map(D::extent).sum()),
            iovecs: Vec::with_capacity(bufs.len().min(MAX_IOVECS)),
            bufs,
            done,
            direction: PhantomData,
        }
    }

    /// Fills `iovecs` with what is left of the buffers after the first
    /// `done` bytes: the buffers not yet full, the first from where it
    /// stopped.
    fn remaining(&mut self) {
        self.iovecs.clear();
        let mut skip = self.progress.done;
        for buf in &mut self.bufs {
            let len = D::extent(buf);
            if skip >= len {
                skip -= len;
                continue;
            }
            self.iovecs.push(libc::iovec {
                // Inside the buffer: `skip < len`.
                iov_base: D::start(buf).wrapping_add(skip).cast(),
                iov_len: len - skip,
            });
            skip = 0;
            if self.iovecs.len() == MAX_IOVECS {
                break;
            }
        }
    }
}

impl<D, B, F> OpLogic for VectoredAt<D, B, F>
where
    D: Direction<B>,
    B: 'static,
    F: FnOnce(&AioContext, io::Result<usize>, Vec<B>) + 'static,
{
    fn request(&mut self) -> OpRequest {
        self.remaining();
        D::requestv(
            self.fd,
            self.iovecs.as_ptr(),
            self.iovecs.len() as u32,
            self.offset + self.progress.done as u64,
        )
    }

    fn step(&mut self, result: i32) -> Step {
        self.progress.step(result, D::EOF)
    }

    fn finish(mut self, ctx: &AioContext) {
        let mut left = self.progress.done;
        for buf in &mut self.bufs {
            let n = left.min(D::extent(buf));
            // SAFETY: the transfers moved the buffers' bytes in order
            // from the start: this one's first `n` (written, for a read).
            unsafe { D::moved(buf, n) };
            left -= n;
        }
        (self.done)(ctx, self.progress.outcome(), self.bufs);
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
        self.start_op(VectoredAt::<Reading, _, _>::new(
            fd.raw_fd(),
            bufs,
            offset,
            done,
        ))
    }

    /// Writes `bufs`, in order, to `fd` at `offset`, and calls `done` with
    /// the total written and the buffers; as
    /// [`write_at`](AioContext::write_at) otherwise.
    pub fn writev_at<B, F>(&self, fd: impl FdSource, bufs: Vec<B>, offset: u64, done: F) -> OpHandle
    where
        B: IoBuf,
        F: FnOnce(&AioContext, io::Result<usize>, Vec<B>) + 'static,
    {
        self.start_op(VectoredAt::<Writing, _, _>::new(
            fd.raw_fd(),
            bufs,
            offset,
            done,
        ))
    }
}
