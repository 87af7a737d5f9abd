//! The monitor's operations engine: reads, writes, syncs and socket
//! requests (accept, recv, send, connect: the kernel waits for the socket
//! itself, its fast poll, so they hold no thread) on the same
//! ring as the fd registrations, so that they reach the kernel with the
//! wait that also collects readiness, and their completions land in the
//! same completion queue (told apart by `user_data`: an operation's id has
//! the top bit set, a registration's token never does).

use std::io;

use aio_core::{OpCompletion, OpEngine, OpId, OpKind, OpRequest};
use io_uring::{opcode, squeue, types};

use crate::UringMonitor;
use crate::registrations::INTERNAL;

/// What the monitor keeps for its operations.
#[derive(Debug, Default)]
pub(crate) struct RingOps {
    /// Completions reaped by waits and not yet taken by the core.
    pub(crate) done: Vec<OpCompletion>,
    /// The operation opcodes the kernel has (probed at setup).
    pub(crate) read: bool,
    pub(crate) write: bool,
    pub(crate) readv: bool,
    pub(crate) writev: bool,
    pub(crate) fsync: bool,
    pub(crate) accept: bool,
    pub(crate) recv: bool,
    pub(crate) send: bool,
    pub(crate) connect: bool,
    pub(crate) cancel: bool,
}

impl RingOps {
    /// Takes a completion in if it is an operation's; false if it is not.
    pub(crate) fn reap(&mut self, user_data: u64, result: i32) -> bool {
        if !OpId::is_op(user_data) {
            return false;
        }
        self.done.push(OpCompletion {
            id: OpId(user_data),
            result,
        });
        true
    }
}

/// The submission queue entry for `request`, tagged with `id`.
fn entry(id: OpId, request: &OpRequest) -> io::Result<squeue::Entry> {
    let entry = match *request {
        OpRequest::Read {
            fd,
            buf,
            len,
            offset,
        } => opcode::Read::new(types::Fd(fd), buf, len)
            .offset(offset)
            .build(),
        OpRequest::Write {
            fd,
            buf,
            len,
            offset,
        } => opcode::Write::new(types::Fd(fd), buf, len)
            .offset(offset)
            .build(),
        OpRequest::Readv {
            fd,
            iov,
            iovcnt,
            offset,
        } => opcode::Readv::new(types::Fd(fd), iov, iovcnt)
            .offset(offset)
            .build(),
        OpRequest::Writev {
            fd,
            iov,
            iovcnt,
            offset,
        } => opcode::Writev::new(types::Fd(fd), iov, iovcnt)
            .offset(offset)
            .build(),
        OpRequest::Fsync { fd, datasync } => {
            let flags = if datasync {
                types::FsyncFlags::DATASYNC
            } else {
                types::FsyncFlags::empty()
            };
            opcode::Fsync::new(types::Fd(fd)).flags(flags).build()
        }
        OpRequest::Accept {
            fd,
            addr,
            addrlen,
            flags,
        } => opcode::Accept::new(types::Fd(fd), addr, addrlen)
            .flags(flags)
            .build(),
        OpRequest::Recv {
            fd,
            buf,
            len,
            flags,
        } => opcode::Recv::new(types::Fd(fd), buf, len)
            .flags(flags)
            .build(),
        OpRequest::Send {
            fd,
            buf,
            len,
            flags,
        } => opcode::Send::new(types::Fd(fd), buf, len)
            .flags(flags | libc::MSG_NOSIGNAL)
            .build(),
        OpRequest::Connect { fd, addr, addrlen } => {
            opcode::Connect::new(types::Fd(fd), addr, addrlen).build()
        }
        OpRequest::Raw { sqe } => {
            // SAFETY: the bytes came from an `squeue::Entry`
            // (`submit_sqe`), or were vouched for as one by the caller of
            // `AioContext::submit_raw`; the layouts are the same.
            unsafe { std::mem::transmute::<[u8; 64], squeue::Entry>(sqe) }
        }
        _ => return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
    };
    Ok(entry.user_data(id.0))
}

impl OpEngine for UringMonitor {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn supports(&self, kind: OpKind) -> bool {
        match kind {
            OpKind::Read => self.ops.read,
            OpKind::Write => self.ops.write,
            OpKind::Readv => self.ops.readv,
            OpKind::Writev => self.ops.writev,
            OpKind::Fsync => self.ops.fsync,
            OpKind::Accept => self.ops.accept,
            OpKind::Recv => self.ops.recv,
            OpKind::Send => self.ops.send,
            OpKind::Connect => self.ops.connect,
            OpKind::Raw => true,
            _ => false,
        }
    }

    unsafe fn push(&mut self, id: OpId, request: &OpRequest) -> io::Result<()> {
        let entry = entry(id, request)?;
        // The caller keeps the request's memory valid until its completion
        // is taken (OpEngine::push), which is only after the kernel posts it.
        // SAFETY: so the entry's memory outlives it, as push_op asks.
        unsafe { self.ring.push_op(&entry) }
    }

    fn cancel(&mut self, id: OpId) {
        if !self.ops.cancel {
            return; // it completes when it completes
        }
        let cancel = opcode::AsyncCancel::new(id.0).build().user_data(INTERNAL);
        // A cancel that cannot be queued leaves the operation to complete
        // normally: it still completes once.
        let _ = self.ring.push(&cancel);
    }

    fn submit_now(&mut self) -> io::Result<()> {
        self.registrations_and_requests_to_kernel()
    }

    fn has_completions(&self) -> bool {
        !self.ops.done.is_empty()
    }

    fn take_completions(&mut self, into: &mut Vec<OpCompletion>) {
        into.append(&mut self.ops.done);
    }
}

/// Queues `entry`, an io_uring request of any opcode, on the ring of `ctx`
/// (a context on a [`UringMonitor`]), and calls `done` with its completion
/// result as the kernel gives it (bytes or a negated errno). The engine sets
/// the entry's `user_data`. On a context whose monitor is not io_uring,
/// `done` gets `-EOPNOTSUPP`. Cancel it through the returned handle.
///
/// ```
/// use aio_core::AioContext;
/// use fdmon_uring::{UringMonitor, submit_sqe};
/// use fdmon_uring::io_uring::opcode;
///
/// let ctx = AioContext::with_monitor(Box::new(UringMonitor::new()?))?;
/// let result = std::rc::Rc::new(std::cell::Cell::new(None));
/// let r = result.clone();
/// // SAFETY: a NOP points to no memory.
/// unsafe { submit_sqe(&ctx, opcode::Nop::new().build(), move |_, res| r.set(Some(res))) };
/// ctx.run_until(|| result.get().is_some())?;
/// assert_eq!(result.get(), Some(0));
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Safety
///
/// As [`AioContext::submit_raw`](aio_core::AioContext::submit_raw): the memory the entry points to stays
/// valid and untouched until `done` runs (or the context's drop returns),
/// and the entry is a request of its own (no link flags).
pub unsafe fn submit_sqe<F>(
    ctx: &aio_core::AioContext,
    entry: squeue::Entry,
    done: F,
) -> aio_core::OpHandle
where
    F: FnOnce(&aio_core::AioContext, i32) + 'static,
{
    // SAFETY: `squeue::Entry` is `#[repr(C)]` around the kernel's 64-byte
    // `io_uring_sqe` (checked below), so its bytes are the entry.
    let sqe: [u8; 64] = unsafe { std::mem::transmute(entry) };
    // SAFETY: the caller's promise, passed on.
    unsafe { ctx.submit_raw(sqe, done) }
}

const _: () = assert!(std::mem::size_of::<squeue::Entry>() == 64);
