//! The loop fd of the poll monitor: `ppoll` has no fd of its own that another
//! event loop could sleep on, so once one is asked for, the monitor keeps an
//! epoll instance in step with its `pollfd` array. The epoll fd is readable
//! whenever a watched fd is; the monitor itself still waits with `ppoll`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// An epoll instance watching the same fds as the `pollfd` array.
#[derive(Debug)]
pub(crate) struct Mirror {
    epfd: OwnedFd,
}

impl Mirror {
    /// A mirror of `fds`.
    pub(crate) fn new(fds: &[libc::pollfd]) -> io::Result<Mirror> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is
        // a new fd that nothing else owns.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epfd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `epfd` was just created and is owned by nobody else.
        let epfd = unsafe { OwnedFd::from_raw_fd(epfd) };
        let mirror = Mirror { epfd };
        for pfd in fds {
            mirror.add(pfd.fd, pfd.events)?;
        }
        Ok(mirror)
    }

    pub(crate) fn fd(&self) -> BorrowedFd<'_> {
        self.epfd.as_fd()
    }

    pub(crate) fn add(&self, fd: RawFd, events: libc::c_short) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, events)
    }

    pub(crate) fn modify(&self, fd: RawFd, events: libc::c_short) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, events)
    }

    /// Stops watching `fd`; an fd already closed is already forgotten.
    pub(crate) fn remove(&self, fd: RawFd) -> io::Result<()> {
        match self.ctl(libc::EPOLL_CTL_DEL, fd, 0) {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOENT)) => Ok(()),
            other => other,
        }
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: libc::c_short) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: epoll_events(events),
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

fn epoll_events(events: libc::c_short) -> u32 {
    let mut out = 0;
    if events & libc::POLLIN != 0 {
        out |= libc::EPOLLIN as u32;
    }
    if events & libc::POLLPRI != 0 {
        out |= libc::EPOLLPRI as u32;
    }
    if events & libc::POLLOUT != 0 {
        out |= libc::EPOLLOUT as u32;
    }
    out
}
