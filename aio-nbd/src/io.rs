//! The one seam where data I/O happens: requests on the export that take
//! owned buffers and give them back on completion.
//!
//! The protocol code ([`connection`](crate::connection)) submits an
//! [`IoRequest`] and handles its [`IoCompletion`]; it never calls the file.
//! An engine may complete a request inline (returning it from
//! [`Io::submit`]) or later, on the home thread, through the connection's
//! [`Deliver`] callback; the connection handles both the same way, so
//! replies go out in completion order.
//!
//! [`OpsIo`] sends reads, writes and flushes through the loop's operations
//! API: on the context's own io_uring ring where the monitor is io_uring,
//! on its thread pool elsewhere; a read fills the very buffer that then
//! goes to the socket. Trim, write-zeroes and block status are metadata
//! calls (`fallocate`, `lseek`) that the API does not carry: they run inline,
//! as [`SyncIo`] runs everything (kept for them, and for tests).

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use aio::AioContext;

use crate::export::Export;
use crate::proto::Extent;

/// A data operation on the export.
#[derive(Debug)]
pub(crate) enum IoOp {
    /// Fill `buf[at..at + len]` from `offset` (the bytes before `at` are
    /// room for the reply's header, so the buffer goes to the socket as it
    /// is).
    Read {
        offset: u64,
        buf: Vec<u8>,
        at: usize,
        len: usize,
    },
    /// Write `buf` at `offset`.
    Write {
        offset: u64,
        buf: Vec<u8>,
        fua: bool,
    },
    /// Persist completed writes.
    Flush,
    /// Discard a range.
    Trim { offset: u64, len: u64, fua: bool },
    /// Make a range read as zeroes.
    WriteZeroes {
        offset: u64,
        len: u64,
        no_hole: bool,
        fua: bool,
    },
    /// Report allocation, in at most `max_extents` extents.
    BlockStatus {
        offset: u64,
        len: u32,
        max_extents: usize,
    },
}

/// An operation and the client request it serves.
#[derive(Debug)]
pub(crate) struct IoRequest {
    /// The client's handle (the reply carries it).
    pub(crate) handle: u64,
    pub(crate) op: IoOp,
}

/// What a successful operation gives back.
#[derive(Debug)]
pub(crate) enum IoOutput {
    /// A read's buffer, filled.
    Read(Vec<u8>),
    /// Done, with nothing to give back (the write's buffer is dropped).
    Done,
    /// Block status extents.
    Extents(Vec<Extent>),
}

/// A finished request.
#[derive(Debug)]
pub(crate) struct IoCompletion {
    pub(crate) handle: u64,
    pub(crate) result: io::Result<IoOutput>,
}

/// Where an engine hands a completion that was not returned inline.
pub(crate) type Deliver = Rc<dyn Fn(&AioContext, IoCompletion)>;

/// An I/O engine for one export.
pub(crate) trait Io {
    /// Starts `request` on `ctx`. Returns its completion if it finished
    /// already; otherwise the engine calls `deliver` with it later, on the
    /// home thread, from a callback of the loop (never from inside
    /// `submit`).
    fn submit(
        &self,
        ctx: &AioContext,
        request: IoRequest,
        deliver: &Deliver,
    ) -> Option<IoCompletion>;
}

/// Blocking system calls, completed inline.
#[derive(Debug)]
pub(crate) struct SyncIo {
    export: Rc<Export>,
}

impl SyncIo {
    pub(crate) fn new(export: Rc<Export>) -> SyncIo {
        SyncIo { export }
    }

    fn run(&self, op: IoOp) -> io::Result<IoOutput> {
        let e = &self.export;
        match op {
            IoOp::Read {
                offset,
                mut buf,
                at,
                len,
            } => {
                e.read_at(&mut buf[at..at + len], offset)?;
                Ok(IoOutput::Read(buf))
            }
            IoOp::Write { offset, buf, fua } => {
                e.write_at(&buf, offset, fua).map(|()| IoOutput::Done)
            }
            IoOp::Flush => e.flush().map(|()| IoOutput::Done),
            IoOp::Trim { offset, len, fua } => e.trim(offset, len, fua).map(|()| IoOutput::Done),
            IoOp::WriteZeroes {
                offset,
                len,
                no_hole,
                fua,
            } => e
                .write_zeroes(offset, len, no_hole, fua)
                .map(|()| IoOutput::Done),
            IoOp::BlockStatus {
                offset,
                len,
                max_extents,
            } => e
                .block_status(offset, len, max_extents)
                .map(IoOutput::Extents),
        }
    }
}

impl Io for SyncIo {
    fn submit(
        &self,
        _ctx: &AioContext,
        request: IoRequest,
        _deliver: &Deliver,
    ) -> Option<IoCompletion> {
        Some(IoCompletion {
            handle: request.handle,
            result: self.run(request.op),
        })
    }
}

/// Reads, writes and flushes through the loop's operations; the rest
/// inline.
#[derive(Debug)]
pub(crate) struct OpsIo {
    export: Rc<Export>,
    inline: SyncIo,
}

impl OpsIo {
    pub(crate) fn new(export: Rc<Export>) -> OpsIo {
        OpsIo {
            inline: SyncIo::new(Rc::clone(&export)),
            export,
        }
    }
}

/// The part `buf[at..at + len]` of a reply buffer, which a read fills: the
/// bytes before `at` hold the reply's header.
struct Region {
    buf: Vec<u8>,
    at: usize,
    len: usize,
}

// SAFETY: the pointer is `at` bytes into the Vec's heap block, which holds
// at least `at + len` initialised bytes (checked when the region is made)
// and does not move while the Vec is not touched; every byte is already
// initialised, so `set_filled` has nothing to record.
unsafe impl aio::IoBufMut for Region {
    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.buf[self.at..].as_mut_ptr()
    }
    fn capacity(&self) -> usize {
        self.len
    }
    unsafe fn set_filled(&mut self, _n: usize) {}
}

impl Io for OpsIo {
    fn submit(
        &self,
        ctx: &AioContext,
        request: IoRequest,
        deliver: &Deliver,
    ) -> Option<IoCompletion> {
        let handle = request.handle;
        let fail = |e| {
            Some(IoCompletion {
                handle,
                result: Err(e),
            })
        };
        let file = self.export.file();
        match request.op {
            IoOp::Read {
                offset,
                buf,
                at,
                len,
            } => {
                if let Err(e) = self.export.check(offset, len, false) {
                    return fail(e);
                }
                if buf.len() < at + len {
                    return fail(io::Error::from(io::ErrorKind::InvalidInput));
                }
                let d = Rc::clone(deliver);
                ctx.read_at(
                    file,
                    Region { buf, at, len },
                    offset,
                    move |ctx, n, region| {
                        let result = match n {
                            Ok(n) if n == region.len => Ok(IoOutput::Read(region.buf)),
                            // The file shrank under the export.
                            Ok(_) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                            Err(e) => Err(e),
                        };
                        d(ctx, IoCompletion { handle, result });
                    },
                );
                None
            }
            IoOp::Write { offset, buf, fua } => {
                if let Err(e) = self.export.check(offset, buf.len(), true) {
                    return fail(e);
                }
                let (d, fd) = (Rc::clone(deliver), file.as_raw_fd());
                ctx.write_at(file, buf, offset, move |ctx, n, _buf| match n {
                    Ok(_) if fua => flush(ctx, fd, handle, d),
                    Ok(_) => d(
                        ctx,
                        IoCompletion {
                            handle,
                            result: Ok(IoOutput::Done),
                        },
                    ),
                    Err(e) => d(
                        ctx,
                        IoCompletion {
                            handle,
                            result: Err(e),
                        },
                    ),
                });
                None
            }
            IoOp::Flush => {
                flush(ctx, file.as_raw_fd(), handle, Rc::clone(deliver));
                None
            }
            op => self.inline.submit(ctx, IoRequest { handle, op }, deliver),
        }
    }
}

/// Persists the completed writes (`fdatasync`), then delivers.
fn flush(ctx: &AioContext, fd: std::os::fd::RawFd, handle: u64, deliver: Deliver) {
    ctx.fdatasync(fd, move |ctx, r| {
        let result = r.map(|()| IoOutput::Done);
        deliver(ctx, IoCompletion { handle, result });
    });
}
