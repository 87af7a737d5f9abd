//! An [`FdMonitor`] over `ppoll(2)`, for the `aio` event loop.
//!
//! The `pollfd` array is kept up to date one registration change at a time
//! (an index per fd, removal by swapping with the last entry), so a wait
//! builds nothing and allocates nothing. Timeouts have nanosecond
//! resolution, and `EINTR` is retried with the time that remains.
//!
//! `poll(2)` costs time in proportion to the number of fds on every wait;
//! for many fds, epoll or io_uring serve better.
//!
//! For another event loop to drive the context
//! ([`FdMonitor::loop_fd`]), the monitor keeps an epoll instance in step
//! with its `pollfd` array from the first time it is asked for its loop fd.
//!
//! ```
//! use aio_core::{AioContext, EventNotifier, FdHandler};
//! use fdmon_poll::PollMonitor;
//!
//! let ctx = AioContext::with_monitor(Box::new(PollMonitor::new()))?;
//! let n = EventNotifier::new()?;
//! ctx.set_fd_handler(&n, Some(FdHandler::new().on_read(|_| {})))?;
//! n.set()?;
//! assert!(ctx.poll(false)?);
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashMap;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

use aio_core::{
    FdMonitor, Interest, Pending, Readiness, ReadyEvent, Registration, Token, deadline,
};

mod mirror;

use mirror::Mirror;

/// A monitor over `ppoll(2)`.
#[derive(Debug, Default)]
pub struct PollMonitor {
    /// What `ppoll` watches, in no particular order.
    fds: Vec<libc::pollfd>,
    /// The token of each entry of `fds`, at the same index.
    tokens: Vec<Token>,
    /// Where each fd sits in `fds`.
    index: HashMap<RawFd, usize>,
    /// An epoll instance watching the same fds, once a loop fd was asked
    /// for: its fd is readable whenever a watched fd is (the monitor itself
    /// still waits with `ppoll`). It follows the epoll monitor's kernel
    /// rules (a closed fd, a reused number).
    mirror: Option<Mirror>,
}

impl PollMonitor {
    /// A monitor with nothing registered.
    pub fn new() -> PollMonitor {
        PollMonitor::default()
    }

    /// How many fds are watched.
    pub fn len(&self) -> usize {
        self.fds.len()
    }

    /// Whether no fd is watched.
    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// The registration held at index `at`.
    fn registration(&self, at: usize) -> Registration {
        Registration {
            token: self.tokens[at],
            interest: interest_of(self.fds[at].events),
        }
    }

    /// Room for one more entry, so that an insertion cannot fail halfway.
    fn reserve(&mut self) -> io::Result<()> {
        self.fds.try_reserve(1).map_err(io::Error::other)?;
        self.tokens.try_reserve(1).map_err(io::Error::other)
    }

    fn insert(&mut self, fd: RawFd, registration: Registration) {
        self.index.insert(fd, self.fds.len());
        self.fds.push(libc::pollfd {
            fd,
            events: events_for(registration.interest),
            revents: 0,
        });
        self.tokens.push(registration.token);
    }

    fn remove(&mut self, fd: RawFd) {
        let Some(at) = self.index.remove(&fd) else {
            return;
        };
        self.fds.swap_remove(at);
        self.tokens.swap_remove(at);
        if let Some(moved) = self.fds.get(at) {
            self.index.insert(moved.fd, at);
        }
    }

    /// `ppoll` until something is ready or the time is up (`EINTR`
    /// retried with the time that remains): how many entries are ready.
    fn ppoll(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let ready = deadline::retry(timeout, |left| {
            let ts = left.map(deadline::timespec);
            let ts_ptr = ts
                .as_ref()
                .map_or(std::ptr::null(), |ts| ts as *const libc::timespec);
            // `fds` is a live, exclusively borrowed array of `fds.len()`
            // pollfd structs that the kernel may write revents into.
            // SAFETY: that array; `ts_ptr` is null or points to `ts`, which
            // outlives the call; a null signal mask leaves the mask as is.
            let n = unsafe {
                libc::ppoll(
                    self.fds.as_mut_ptr(),
                    self.fds.len() as libc::nfds_t,
                    ts_ptr,
                    std::ptr::null(),
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Some(n as usize))
        })?;
        Ok(ready.unwrap_or(0))
    }
}

impl FdMonitor for PollMonitor {
    fn name(&self) -> &'static str {
        "poll"
    }

    fn update(
        &mut self,
        fd: RawFd,
        _old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        let at = self.index.get(&fd).copied();
        if at.is_none() && new.is_some() {
            self.reserve()?;
        }
        let held = at.map(|at| self.registration(at));
        if let Some(mirror) = &self.mirror {
            mirror.update(fd, held, new)?;
        }
        match (at, new) {
            (Some(at), Some(registration)) => {
                self.fds[at].events = events_for(registration.interest);
                self.tokens[at] = registration.token;
            }
            (None, Some(registration)) => self.insert(fd, registration),
            (Some(_), None) => self.remove(fd),
            (None, None) => {}
        }
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        if self.ppoll(timeout)? == 0 {
            return Ok(());
        }
        for (pfd, token) in self.fds.iter().zip(&self.tokens) {
            if pfd.revents != 0 {
                events.push(ReadyEvent {
                    token: *token,
                    readiness: readiness_of(pfd.revents),
                });
            }
        }
        Ok(())
    }

    fn pending(&mut self) -> Pending {
        Pending::Unknown
    }

    /// The fd of an epoll instance kept in step with the watched fds from
    /// now on (`ppoll` has no fd of its own).
    fn loop_fd(&mut self) -> io::Result<BorrowedFd<'_>> {
        if self.mirror.is_none() {
            let mirror = Mirror::new()?;
            for at in 0..self.fds.len() {
                mirror.update(self.fds[at].fd, None, Some(self.registration(at)))?;
            }
            self.mirror = Some(mirror);
        }
        match &self.mirror {
            Some(mirror) => Ok(mirror.fd()),
            None => Err(io::Error::other("no epoll mirror")),
        }
    }
}

fn events_for(interest: Interest) -> libc::c_short {
    let mut events = 0;
    if interest.is_readable() {
        events |= libc::POLLIN | libc::POLLPRI;
    }
    if interest.is_writable() {
        events |= libc::POLLOUT;
    }
    events
}

fn interest_of(events: libc::c_short) -> Interest {
    let mut interest = Interest::NONE;
    if events & libc::POLLIN != 0 {
        interest = interest | Interest::READABLE;
    }
    if events & libc::POLLOUT != 0 {
        interest = interest | Interest::WRITABLE;
    }
    interest
}

fn readiness_of(revents: libc::c_short) -> Readiness {
    let mut readiness = Readiness::EMPTY;
    if revents & (libc::POLLIN | libc::POLLPRI) != 0 {
        readiness = readiness | Readiness::READABLE;
    }
    if revents & libc::POLLOUT != 0 {
        readiness = readiness | Readiness::WRITABLE;
    }
    if revents & libc::POLLHUP != 0 {
        readiness = readiness | Readiness::HANGUP;
    }
    // POLLNVAL: the fd was closed while registered; an error, so the
    // handler sees it and can remove itself.
    if revents & (libc::POLLERR | libc::POLLNVAL) != 0 {
        readiness = readiness | Readiness::ERROR;
    }
    readiness
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(token: u64, interest: Interest) -> Option<Registration> {
        Some(Registration {
            token: Token(token),
            interest,
        })
    }

    #[test]
    fn removal_keeps_the_index_of_the_moved_entry() {
        let mut m = PollMonitor::new();
        for fd in 0..4 {
            m.update(fd, None, reg(fd as u64, Interest::READABLE))
                .unwrap();
        }
        m.update(1, reg(1, Interest::READABLE), None).unwrap();
        assert_eq!(m.len(), 3);
        for (fd, at) in &m.index {
            assert_eq!(m.fds[*at].fd, *fd);
            assert_eq!(m.tokens[*at], Token(*fd as u64));
        }
        m.update(3, reg(3, Interest::READABLE), reg(30, Interest::BOTH))
            .unwrap();
        let at = m.index[&3];
        assert_eq!(
            (m.tokens[at], m.fds[at].events),
            (Token(30), libc::POLLIN | libc::POLLPRI | libc::POLLOUT)
        );
    }
}
