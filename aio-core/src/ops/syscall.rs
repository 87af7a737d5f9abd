//! A request carried out by a plain, blocking system call: what an engine
//! without a ring (a thread pool's worker, the test engine) does with it.

use std::io;
use std::os::fd::RawFd;

use super::OpRequest;

impl OpRequest {
    /// Makes the system call this request asks for, on the calling thread,
    /// and returns its result as an io_uring completion carries it: the
    /// byte count (or 0) on success, the negated errno on failure.
    ///
    /// A read or write at an offset on a pipe or a socket (which have
    /// none, `ESPIPE`) is made as a plain `read` or `write`, as io_uring
    /// does. A socket request is its plain call, which blocks as the
    /// socket's mode says (a send adds `MSG_NOSIGNAL`: `EPIPE`, not
    /// `SIGPIPE`); see [`execute_nonblocking`](OpRequest::execute_nonblocking)
    /// for one that does not. A call runs its closure. A raw request
    /// cannot be made this way: `-EOPNOTSUPP`.
    ///
    /// # Safety
    ///
    /// The memory the request points to is valid as the request describes
    /// it (a read's buffers writable, a write's readable, for their
    /// lengths) and nobody else touches it during the call.
    ///
    /// ```
    /// use std::io::Write;
    /// use std::os::fd::AsRawFd;
    /// use aio_core::OpRequest;
    ///
    /// let (reader, mut writer) = std::io::pipe()?;
    /// writer.write_all(b"ping")?;
    /// let mut buf = [0u8; 8];
    /// let request = OpRequest::Read { fd: reader.as_raw_fd(), buf: buf.as_mut_ptr(), len: 8, offset: 0 };
    /// // SAFETY: `buf` is ours and writable for its 8 bytes during the call.
    /// let n = unsafe { request.execute() };
    /// assert_eq!(&buf[..n as usize], b"ping");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub unsafe fn execute(&self) -> i32 {
        let result = match *self {
            OpRequest::Read {
                fd,
                buf,
                len,
                offset,
            } => at_offset_or_not(
                // SAFETY: the caller vouches that `buf` is writable for
                // `len` bytes, by us alone, for the call.
                || unsafe { libc::pread(fd, buf.cast(), len as usize, offset as libc::off_t) },
                // SAFETY: as for the pread.
                || unsafe { libc::read(fd, buf.cast(), len as usize) },
            ),
            OpRequest::Write {
                fd,
                buf,
                len,
                offset,
            } => at_offset_or_not(
                // SAFETY: the caller vouches that `buf` is readable for
                // `len` bytes, unchanged, for the call.
                || unsafe { libc::pwrite(fd, buf.cast(), len as usize, offset as libc::off_t) },
                // SAFETY: as for the pwrite.
                || unsafe { libc::write(fd, buf.cast(), len as usize) },
            ),
            OpRequest::Readv {
                fd,
                iov,
                iovcnt,
                offset,
            } => at_offset_or_not(
                // SAFETY: the caller vouches that the `iovcnt` iovecs at
                // `iov` describe writable buffers, by us alone, for the call.
                || unsafe { libc::preadv(fd, iov, iovcnt as libc::c_int, offset as libc::off_t) },
                // SAFETY: as for the preadv.
                || unsafe { libc::readv(fd, iov, iovcnt as libc::c_int) },
            ),
            OpRequest::Writev {
                fd,
                iov,
                iovcnt,
                offset,
            } => at_offset_or_not(
                // SAFETY: the caller vouches that the `iovcnt` iovecs at
                // `iov` describe readable buffers, unchanged, for the call.
                || unsafe { libc::pwritev(fd, iov, iovcnt as libc::c_int, offset as libc::off_t) },
                // SAFETY: as for the pwritev.
                || unsafe { libc::writev(fd, iov, iovcnt as libc::c_int) },
            ),
            OpRequest::Fsync { fd, datasync } => {
                // SAFETY: fsync and fdatasync take only an fd.
                let rc = unsafe {
                    if datasync {
                        libc::fdatasync(fd)
                    } else {
                        libc::fsync(fd)
                    }
                };
                rc as isize
            }
            // SAFETY: the caller vouches for `data` as the request's
            // memory, which is what `call` expects.
            OpRequest::Call { call, data } => return unsafe { call(data) },
            OpRequest::Accept {
                fd,
                addr,
                addrlen,
                flags,
            } => {
                // SAFETY: the caller vouches that `addrlen` is writable and
                // `addr` writable for `*addrlen` bytes, by us alone.
                unsafe { libc::accept4(fd, addr, addrlen, flags) as isize }
            }
            OpRequest::Recv {
                fd,
                buf,
                len,
                flags,
            } => {
                // SAFETY: the caller vouches that `buf` is writable for
                // `len` bytes, by us alone, for the call.
                unsafe { libc::recv(fd, buf.cast(), len as usize, flags) }
            }
            OpRequest::Send {
                fd,
                buf,
                len,
                flags,
            } => {
                // SAFETY: the caller vouches that `buf` is readable for
                // `len` bytes, unchanged, for the call.
                unsafe { libc::send(fd, buf.cast(), len as usize, flags | libc::MSG_NOSIGNAL) }
            }
            OpRequest::Connect { fd, addr, addrlen } => {
                // SAFETY: the caller vouches that `addr` is readable for
                // `addrlen` bytes.
                unsafe { libc::connect(fd, addr, addrlen) as isize }
            }
            OpRequest::Raw { .. } => return -libc::EOPNOTSUPP,
        };
        if result < 0 {
            -errno_or_eio()
        } else {
            // A request carries at most `u32::MAX` bytes, and the core
            // sends at most 2^30: the count fits.
            i32::try_from(result).unwrap_or(i32::MAX)
        }
    }
}

impl OpRequest {
    /// Makes a socket request's call without blocking, for an engine that
    /// waits for [`readiness`](OpRequest::readiness) itself (a thread
    /// pool's worker, which must stay cancellable): `-EAGAIN` if the
    /// socket is not ready, else the call's result as
    /// [`execute`](OpRequest::execute) gives it.
    ///
    /// A receive or send goes with `MSG_DONTWAIT`, whatever the socket's
    /// mode. An accept first checks that the listener is readable (so that
    /// it blocks only on a blocking listener whose connection another
    /// thread took in between). A connect is made on the first attempt
    /// (`first`): at once on a non-blocking socket, which answers
    /// `EINPROGRESS` (reported as `-EAGAIN`), and until it is done on a
    /// blocking one; the later attempts report its outcome
    /// (`SO_ERROR`) once the socket is writable. Other requests are made
    /// as `execute` makes them.
    ///
    /// # Safety
    ///
    /// As for [`execute`](OpRequest::execute).
    pub unsafe fn execute_nonblocking(&self, first: bool) -> i32 {
        let request = match *self {
            OpRequest::Recv {
                fd,
                buf,
                len,
                flags,
            } => OpRequest::Recv {
                fd,
                buf,
                len,
                flags: flags | libc::MSG_DONTWAIT,
            },
            OpRequest::Send {
                fd,
                buf,
                len,
                flags,
            } => OpRequest::Send {
                fd,
                buf,
                len,
                flags: flags | libc::MSG_DONTWAIT,
            },
            OpRequest::Accept { fd, .. } if !ready_now(fd, libc::POLLIN) => return -libc::EAGAIN,
            OpRequest::Connect { fd, .. } if !first => {
                if !ready_now(fd, libc::POLLOUT) {
                    return -libc::EAGAIN;
                }
                return -socket_error(fd);
            }
            request => request,
        };
        // SAFETY: the caller's promise, for the same memory.
        match unsafe { request.execute() } {
            r if r == -libc::EINPROGRESS || r == -libc::EWOULDBLOCK => -libc::EAGAIN,
            r => r,
        }
    }
}

/// Whether `fd` has any of `events` (or an error or hang-up) now.
fn ready_now(fd: RawFd, events: i16) -> bool {
    if fd < 0 {
        // poll(2) would skip it, never ready: the call reports EBADF.
        return true;
    }
    let mut pollfd = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one pollfd, ours, and a zero timeout.
    let n = unsafe { libc::poll(&mut pollfd, 1, 0) };
    // An error (or POLLNVAL: a bad fd) counts as ready: the call reports it.
    n != 0
}

/// The pending error of socket `fd` (`SO_ERROR`; 0 if none), or the
/// getsockopt's own.
fn socket_error(fd: RawFd) -> i32 {
    let mut error: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `error` and `len` are ours and describe an int's room.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ERROR,
            (&raw mut error).cast(),
            &mut len,
        )
    };
    if rc < 0 { errno_or_eio() } else { error }
}

/// The positioned call's result, or, on a pipe or a socket, which have no
/// offset (`ESPIPE`), the plain call's, as io_uring does.
fn at_offset_or_not(positioned: impl FnOnce() -> isize, plain: impl FnOnce() -> isize) -> isize {
    match positioned() {
        n if n < 0 && errno() == libc::ESPIPE => plain(),
        n => n,
    }
}

/// The calling thread's errno (0 if none).
fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// The calling thread's errno, after a call that failed.
fn errno_or_eio() -> i32 {
    match errno() {
        0 => libc::EIO,
        e => e,
    }
}
