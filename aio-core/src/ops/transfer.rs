//! What reads and writes share: the direction a transfer moves bytes in
//! (which request it sends, what its buffer offers, what 0 bytes means),
//! and how one result moves a transfer on.

use std::os::fd::RawFd;

use super::buf::{IoBuf, IoBufMut};
use super::request::OpRequest;
use super::table::Step;

/// The direction of a transfer over buffers of type `B`: a read fills
/// them ([`Reading`]), a write drains them ([`Writing`]).
pub(super) trait Direction<B>: 'static {
    /// What a result of 0 bytes before the end means.
    const EOF: EndOfFile;
    /// How many bytes the buffer takes part with: a read's capacity, a
    /// write's length.
    fn extent(buf: &B) -> usize;
    /// The start of those bytes.
    fn start(buf: &mut B) -> *mut u8;
    /// Records, once the transfer is over, that the first `n` bytes of
    /// `buf` were moved.
    ///
    /// # Safety
    ///
    /// For a read: the first `n` bytes of `buf` were written.
    unsafe fn moved(buf: &mut B, n: usize);
    /// The single-buffer request for `len` bytes at `at`.
    fn request(fd: RawFd, at: *mut u8, len: u32, offset: u64) -> OpRequest;
    /// The vectored request over `iovcnt` iovecs at `iov`.
    fn requestv(fd: RawFd, iov: *const libc::iovec, iovcnt: u32, offset: u64) -> OpRequest;
}

/// Bytes from the file into the buffers.
pub(super) struct Reading;

/// Bytes from the buffers into the file.
pub(super) struct Writing;

impl<B: IoBufMut> Direction<B> for Reading {
    const EOF: EndOfFile = EndOfFile::Stops;

    fn extent(buf: &B) -> usize {
        buf.capacity()
    }

    fn start(buf: &mut B) -> *mut u8 {
        buf.as_mut_ptr()
    }

    unsafe fn moved(buf: &mut B, n: usize) {
        // SAFETY: the caller vouches that the first `n` bytes were written.
        unsafe { buf.set_filled(n) }
    }

    fn request(fd: RawFd, at: *mut u8, len: u32, offset: u64) -> OpRequest {
        OpRequest::Read {
            fd,
            buf: at,
            len,
            offset,
        }
    }

    fn requestv(fd: RawFd, iov: *const libc::iovec, iovcnt: u32, offset: u64) -> OpRequest {
        OpRequest::Readv {
            fd,
            iov,
            iovcnt,
            offset,
        }
    }
}

impl<B: IoBuf> Direction<B> for Writing {
    const EOF: EndOfFile = EndOfFile::IsAnError;

    fn extent(buf: &B) -> usize {
        buf.len()
    }

    fn start(buf: &mut B) -> *mut u8 {
        // Only read through: the request is a write.
        buf.as_ptr().cast_mut()
    }

    unsafe fn moved(_buf: &mut B, _n: usize) {}

    fn request(fd: RawFd, at: *mut u8, len: u32, offset: u64) -> OpRequest {
        OpRequest::Write {
            fd,
            buf: at,
            len,
            offset,
        }
    }

    fn requestv(fd: RawFd, iov: *const libc::iovec, iovcnt: u32, offset: u64) -> OpRequest {
        OpRequest::Writev {
            fd,
            iov,
            iovcnt,
            offset,
        }
    }
}

/// What a transfer that returns 0 bytes means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum EndOfFile {
    /// A read at the end of the file: done, short.
    Stops,
    /// A write that made no progress: `EIO`, rather than looping forever.
    IsAnError,
}

/// Where a transfer stands: bytes moved so far, of how many, and the
/// error that ended it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Progress {
    pub(super) done: usize,
    pub(super) total: usize,
    pub(super) error: Option<i32>,
}

impl Progress {
    /// A transfer of `total` bytes, none moved yet.
    pub(super) fn of(total: usize) -> Progress {
        Progress {
            total,
            ..Progress::default()
        }
    }

    /// Takes one request's result in: whether to send the rest.
    pub(super) fn step(&mut self, result: i32, eof: EndOfFile) -> Step {
        match result {
            r if r == -libc::EAGAIN || r == -libc::EINTR => Step::Again,
            r if r < 0 => {
                self.error = Some(-r);
                Step::Done
            }
            0 if self.done < self.total && eof == EndOfFile::IsAnError => {
                self.error = Some(libc::EIO);
                Step::Done
            }
            0 => Step::Done,
            n => {
                self.done = (self.done + n as usize).min(self.total);
                if self.done < self.total {
                    Step::Again
                } else {
                    Step::Done
                }
            }
        }
    }

    /// The outcome for the callback.
    pub(super) fn outcome(&self) -> std::io::Result<usize> {
        super::outcome(self.done, self.error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(done: usize, total: usize, result: i32, eof: EndOfFile) -> (usize, Option<i32>, Step) {
        let mut progress = Progress {
            done,
            total,
            error: None,
        };
        let step = progress.step(result, eof);
        (progress.done, progress.error, step)
    }

    #[test]
    fn a_transfer_goes_on_until_done_and_stops_at_the_end_of_the_file() {
        use EndOfFile::{IsAnError, Stops};
        assert_eq!(after(0, 10, 4, Stops), (4, None, Step::Again));
        assert_eq!(after(4, 10, 6, Stops), (10, None, Step::Done));
        assert_eq!(after(4, 10, 0, Stops), (4, None, Step::Done));
        assert_eq!(after(4, 10, -libc::EAGAIN, Stops), (4, None, Step::Again));
        assert_eq!(
            after(4, 10, -libc::EINTR, IsAnError),
            (4, None, Step::Again)
        );
        assert_eq!(
            after(4, 10, -libc::EBADF, Stops),
            (4, Some(libc::EBADF), Step::Done)
        );
        assert_eq!(after(4, 10, 0, IsAnError), (4, Some(libc::EIO), Step::Done));
        assert_eq!(after(0, 0, 0, IsAnError), (0, None, Step::Done));
    }
}
