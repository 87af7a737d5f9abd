//! The loop fd of the poll monitor: `ppoll` has no fd of its own that another
//! event loop could sleep on, so once one is asked for, the monitor keeps an
//! epoll instance in step with its `pollfd` array. The epoll fd is readable
//! whenever a watched fd is; the monitor itself still waits with `ppoll`.
//! Its registrations follow the epoll monitor's kernel rules (a closed fd's
//! registration is already gone; a modify of a forgotten fd is an add),
//! without depending on that crate: each backend stands alone.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use aio_core::{Interest, Registration};

/// An epoll instance watching the same fds as the `pollfd` array.
#[derive(Debug)]
pub(crate) struct Mirror {
    epfd: OwnedFd,
}

impl Mirror {
    pub(crate) fn new() -> io::Result<Mirror> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is
        // a new fd that nothing else owns.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `epfd` was just created and is owned by nobody else.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        Ok(Mirror { epfd })
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.epfd.as_fd()
    }

    /// Moves `fd` from registration `old` to `new`, as the epoll monitor's
    /// `update` does.
    pub(crate) fn update(
        &self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        let interest = new.map_or(Interest::NONE, |r| r.interest);
        match (old, new) {
            (None, None) => Ok(()),
            (None, Some(_)) => self.ctl(libc::EPOLL_CTL_ADD, fd, interest),
            (Some(_), Some(_)) => match self.ctl(libc::EPOLL_CTL_MOD, fd, interest) {
                // Closed and the number reused: the kernel forgot the old
                // registration, so this is an addition.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    self.ctl(libc::EPOLL_CTL_ADD, fd, interest)
                }
                result => result,
            },
            (Some(_), None) => match self.ctl(libc::EPOLL_CTL_DEL, fd, interest) {
                // Closed (EBADF), or the number reused by a file not in the
                // set (ENOENT) or that cannot be (EPERM).
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::EBADF | libc::ENOENT | libc::EPERM)
                    ) =>
                {
                    Ok(())
                }
                result => result,
            },
        }
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, interest: Interest) -> io::Result<()> {
        let mut events = 0;
        if interest.is_readable() {
            events |= (libc::EPOLLIN | libc::EPOLLPRI) as u32;
        }
        if interest.is_writable() {
            events |= libc::EPOLLOUT as u32;
        }
        let mut event = libc::epoll_event {
            events,
            u64: fd as u64,
        };
        // SAFETY: `event` is a valid epoll_event that outlives the call (the
        // kernel copies it); `fd` is only named, not dereferenced.
        let rc = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
