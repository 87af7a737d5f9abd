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
use std::time::{Duration, Instant};

use aio_core::{FdMonitor, Interest, Pending, Readiness, ReadyEvent, Registration, Token};

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
    /// An epoll instance watching the same fds, once a loop fd was asked for.
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

    /// One `ppoll`, retried on `EINTR` with the time that remains.
    fn ppoll(&mut self, timeout: Option<Duration>) -> io::Result<usize> {
        let deadline = timeout.map(|t| Instant::now().checked_add(t));
        let mut left = timeout;
        loop {
            let ts = left.map(timespec);
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
            if n >= 0 {
                return Ok(n as usize);
            }
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(err);
            }
            left = match deadline {
                None => None,
                // A deadline past what Instant can hold: as good as forever.
                Some(None) => timeout,
                Some(Some(deadline)) => Some(deadline.saturating_duration_since(Instant::now())),
            };
        }
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
        match (self.index.get(&fd).copied(), new) {
            (Some(at), Some(registration)) => {
                let events = events_for(registration.interest);
                if let Some(mirror) = &self.mirror {
                    mirror.modify(fd, events)?;
                }
                self.fds[at].events = events;
                self.tokens[at] = registration.token;
            }
            (None, Some(registration)) => {
                self.fds.try_reserve(1).map_err(io::Error::other)?;
                self.tokens.try_reserve(1).map_err(io::Error::other)?;
                if let Some(mirror) = &self.mirror {
                    mirror.add(fd, events_for(registration.interest))?;
                }
                self.insert(fd, registration);
            }
            (Some(_), None) => {
                if let Some(mirror) = &self.mirror {
                    mirror.remove(fd)?;
                }
                self.remove(fd);
            }
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
            self.mirror = Some(Mirror::new(&self.fds)?);
        }
        let mirror = self.mirror.as_ref();
        mirror
            .map(Mirror::fd)
            .ok_or_else(|| io::Error::other("no epoll mirror"))
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

fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
    }
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

    #[test]
    fn timespec_keeps_nanoseconds() {
        let ts = timespec(Duration::from_nanos(1_000_000_123));
        assert_eq!((ts.tv_sec, ts.tv_nsec), (1, 123));
        assert_eq!(timespec(Duration::MAX).tv_sec, libc::time_t::MAX);
    }
}
