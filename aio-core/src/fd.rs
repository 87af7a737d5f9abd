//! Checks that a raw fd names an open file, so that registering a closed fd
//! fails the same way on every monitor (`ppoll` would only report `POLLNVAL`
//! later, and io_uring only in a completion).

use std::io;
use std::os::fd::RawFd;

/// `Ok` if `fd` (non-negative) is open in this process, `EBADF` otherwise.
pub(crate) fn check_open(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_GETFD reads the fd's flags and touches no memory; on an fd
    // that is not open it fails with EBADF, which is what we are asking.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Anything that names a file descriptor: a [`RawFd`], a
/// [`BorrowedFd`](std::os::fd::BorrowedFd), or a reference to anything that
/// has one (`&File`, `&TcpStream`, `&EventNotifier`, ...).
///
/// Raw numbers are accepted so that an fd received from elsewhere (over a
/// socket, from C) can be registered as it is; a negative or closed one is
/// refused with an error, and generations make a number reused after close
/// harmless.
pub trait FdSource {
    /// The fd number.
    fn raw_fd(&self) -> RawFd;
}

impl FdSource for RawFd {
    fn raw_fd(&self) -> RawFd {
        *self
    }
}

impl FdSource for std::os::fd::BorrowedFd<'_> {
    fn raw_fd(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

impl<T: std::os::fd::AsRawFd + ?Sized> FdSource for &T {
    fn raw_fd(&self) -> RawFd {
        (**self).as_raw_fd()
    }
}
