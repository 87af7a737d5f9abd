//! What an operation asks for, as an engine receives it: plain values and
//! raw pointers into memory that the core keeps alive until the engine
//! reports the operation's completion.

use std::os::fd::RawFd;

/// The bit that marks an [`OpId`]; registration tokens never have it.
pub(crate) const OP_BIT: u64 = 1 << 63;

/// Names one operation in flight: a slot of the context's operation table
/// and the slot's generation, so that the completion of an operation whose
/// slot has been reused since never reaches the new owner. Its value always
/// has the top bit set and never equals `u64::MAX`, so an engine that shares
/// a ring with fd registrations can use it as the request's `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpId(pub u64);

impl OpId {
    pub(crate) fn new(index: u32, generation: u32) -> OpId {
        let generation = u64::from(generation & 0x3fff_ffff);
        OpId(OP_BIT | (generation << 32) | u64::from(index))
    }

    pub(crate) fn index(self) -> u32 {
        self.0 as u32
    }

    pub(crate) fn generation(self) -> u32 {
        ((self.0 & !OP_BIT) >> 32) as u32
    }

    /// Whether a `user_data` names an operation (as opposed to an fd
    /// registration's token, or a monitor's own request).
    pub fn is_op(user_data: u64) -> bool {
        user_data & OP_BIT != 0 && user_data != u64::MAX
    }
}

/// The kind of an operation, for an engine to say which it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// `pread(2)`.
    Read,
    /// `pwrite(2)`.
    Write,
    /// `preadv(2)`.
    Readv,
    /// `pwritev(2)`.
    Writev,
    /// `fsync(2)` or `fdatasync(2)`.
    Fsync,
    /// A backend's own request, filled in by its caller.
    Raw,
    /// A blocking closure, for an engine with threads of its own.
    Call,
    /// `accept4(2)`.
    Accept,
    /// `recv(2)`.
    Recv,
    /// `send(2)`.
    Send,
    /// `connect(2)`.
    Connect,
}

/// One request, as the core hands it to an engine.
///
/// The pointers stay valid, and the memory they point to is neither read
/// nor written by anyone else, from the [`push`](crate::OpEngine::push)
/// until the engine reports the request's completion (or, if it never does,
/// until the engine is dropped).
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum OpRequest {
    /// Read up to `len` bytes at `offset` into `buf`.
    Read {
        /// The file.
        fd: RawFd,
        /// Where the bytes go.
        buf: *mut u8,
        /// How many bytes at most.
        len: u32,
        /// Where in the file.
        offset: u64,
    },
    /// Write `len` bytes from `buf` at `offset`.
    Write {
        /// The file.
        fd: RawFd,
        /// Where the bytes come from.
        buf: *const u8,
        /// How many bytes.
        len: u32,
        /// Where in the file.
        offset: u64,
    },
    /// Read at `offset` into the `iovcnt` buffers `iov` describes, in order.
    Readv {
        /// The file.
        fd: RawFd,
        /// The buffers.
        iov: *const libc::iovec,
        /// How many.
        iovcnt: u32,
        /// Where in the file.
        offset: u64,
    },
    /// Write the `iovcnt` buffers `iov` describes at `offset`, in order.
    Writev {
        /// The file.
        fd: RawFd,
        /// The buffers.
        iov: *const libc::iovec,
        /// How many.
        iovcnt: u32,
        /// Where in the file.
        offset: u64,
    },
    /// Flush the file to stable storage: its data only with `datasync`.
    Fsync {
        /// The file.
        fd: RawFd,
        /// `fdatasync` rather than `fsync`.
        datasync: bool,
    },
    /// Accept a connection on the listening socket `fd`, with `flags`
    /// (`SOCK_CLOEXEC`, ...) for the new one, whose address goes to `addr`
    /// (`*addrlen` bytes of room, set to the address's length). The result
    /// is the new socket's fd.
    Accept {
        /// The listening socket.
        fd: RawFd,
        /// Where the peer's address goes.
        addr: *mut libc::sockaddr,
        /// Its room in, its length out.
        addrlen: *mut libc::socklen_t,
        /// `accept4`'s flags.
        flags: i32,
    },
    /// Receive up to `len` bytes from the socket `fd` into `buf`.
    Recv {
        /// The socket.
        fd: RawFd,
        /// Where the bytes go.
        buf: *mut u8,
        /// How many bytes at most.
        len: u32,
        /// `recv`'s flags.
        flags: i32,
    },
    /// Send `len` bytes from `buf` on the socket `fd`.
    Send {
        /// The socket.
        fd: RawFd,
        /// Where the bytes come from.
        buf: *const u8,
        /// How many bytes.
        len: u32,
        /// `send`'s flags (`MSG_NOSIGNAL` is always added).
        flags: i32,
    },
    /// Connect the socket `fd` to the `addrlen` bytes of address at `addr`.
    Connect {
        /// The socket.
        fd: RawFd,
        /// The address.
        addr: *const libc::sockaddr,
        /// Its length.
        addrlen: libc::socklen_t,
    },
    /// Call a blocking closure (the context's
    /// [`run_blocking`](crate::AioContext::run_blocking)): `call(data)`,
    /// once, on a thread that may block; what it returns is the result.
    /// The closure is `Send`: any thread may make the call.
    Call {
        /// The closure's entry point.
        call: unsafe fn(*mut ()) -> i32,
        /// What it is called with.
        data: *mut (),
    },
    /// A ring backend's raw request, the 64 bytes of an io_uring
    /// submission queue entry, whose `user_data` the engine sets.
    Raw {
        /// The entry, as the kernel reads it.
        sqe: [u8; 64],
    },
}

impl OpRequest {
    /// The request's kind.
    pub fn kind(&self) -> OpKind {
        match self {
            OpRequest::Read { .. } => OpKind::Read,
            OpRequest::Write { .. } => OpKind::Write,
            OpRequest::Readv { .. } => OpKind::Readv,
            OpRequest::Writev { .. } => OpKind::Writev,
            OpRequest::Fsync { .. } => OpKind::Fsync,
            OpRequest::Call { .. } => OpKind::Call,
            OpRequest::Raw { .. } => OpKind::Raw,
            OpRequest::Accept { .. } => OpKind::Accept,
            OpRequest::Recv { .. } => OpKind::Recv,
            OpRequest::Send { .. } => OpKind::Send,
            OpRequest::Connect { .. } => OpKind::Connect,
        }
    }

    /// For a socket request, the socket and the `poll(2)` events it waits
    /// for when it cannot go on at once (`POLLIN` for an accept or a
    /// receive, `POLLOUT` for a send or a connect): what an engine without
    /// a ring waits on before it calls
    /// [`execute_nonblocking`](OpRequest::execute_nonblocking) again.
    /// `None` for every other request.
    pub fn readiness(&self) -> Option<(RawFd, i16)> {
        match *self {
            OpRequest::Accept { fd, .. } | OpRequest::Recv { fd, .. } => Some((fd, libc::POLLIN)),
            OpRequest::Send { fd, .. } | OpRequest::Connect { fd, .. } => Some((fd, libc::POLLOUT)),
            _ => None,
        }
    }
}

/// What an engine reports for one request: a system call's result, the
/// byte count (or 0) on success and a negated errno on failure, as an
/// io_uring completion carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpCompletion {
    /// The request.
    pub id: OpId,
    /// Its result.
    pub result: i32,
}
