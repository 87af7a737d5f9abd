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
//! **Interim:** the only engine today, [`SyncIo`], completes every request
//! inline with blocking `pread` / `pwrite` / `fallocate` / `fdatasync` on
//! the loop's thread, so a slow disk stalls every connection of that loop.
//! It is meant to be replaced by the loop's operations API (requests on the
//! context's io_uring ring, a thread pool elsewhere; design section 12),
//! which does not exist yet: owned buffers in and out are what that API
//! takes, so the switch touches this module only.

use std::io;
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
    /// Starts `request`. Returns its completion if it finished already;
    /// otherwise the engine calls `deliver` with it later, on the home
    /// thread, from a callback of the loop (never from inside `submit`).
    fn submit(&self, request: IoRequest, deliver: &Deliver) -> Option<IoCompletion>;
}

/// The interim engine: blocking system calls, completed inline.
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
    fn submit(&self, request: IoRequest, _deliver: &Deliver) -> Option<IoCompletion> {
        Some(IoCompletion {
            handle: request.handle,
            result: self.run(request.op),
        })
    }
}
