//! An [`FdMonitor`] over level-triggered `epoll(7)`, for the `aio` event
//! loop.
//!
//! Each registration is one `epoll_ctl` call carrying the token as the
//! event's data, so a wait costs time in proportion to the ready fds, not
//! the watched ones. Timeouts have nanosecond resolution: `epoll_pwait2`
//! where the kernel has it (5.11 and later), else `ppoll` on the epoll fd
//! followed by a zero-timeout `epoll_wait`, as QEMU does. The event buffer
//! is reused and grows (up to [`EpollMonitor::MAX_EVENTS`]) when a wait
//! fills it; fds it cannot hold stay on the kernel's ready list, which
//! epoll rotates, and are reported by the next wait.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::time::Duration;

use aio_core::{FdMonitor, Interest, Pending, Readiness, ReadyEvent, Registration, deadline};
use rustix::event::epoll;

/// A monitor over level-triggered epoll.
///
/// ```
/// use aio_core::{AioContext, EventNotifier, FdHandler};
/// use fdmon_epoll::EpollMonitor;
///
/// let ctx = AioContext::with_monitor(Box::new(EpollMonitor::new()?))?;
/// let n = EventNotifier::new()?;
/// ctx.set_fd_handler(&n, Some(FdHandler::new().on_read(|_| {})))?;
/// n.set()?;
/// assert!(ctx.poll(false)?);
///
/// // epoll refuses regular files, with the kernel's EPERM.
/// let file = std::fs::File::open(std::env::current_exe()?)?;
/// let err = ctx.set_fd_handler(&file, Some(FdHandler::new().on_read(|_| {})));
/// assert_eq!(err.unwrap_err().raw_os_error(), Some(libc::EPERM));
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct EpollMonitor {
    epfd: OwnedFd,
    /// Where `epoll_wait` writes; its length is how many one wait collects.
    events: Vec<libc::epoll_event>,
    /// Whether to wait with `epoll_pwait2` (until it says `ENOSYS`).
    pwait2: bool,
}

const NO_EVENT: libc::epoll_event = libc::epoll_event { events: 0, u64: 0 };

impl EpollMonitor {
    /// How many events the first wait can collect.
    pub const INITIAL_EVENTS: usize = 128;
    /// The most events one wait collects; the buffer doubles up to this
    /// each time a wait fills it.
    pub const MAX_EVENTS: usize = 4096;

    /// A monitor with nothing registered, on a new close-on-exec epoll fd.
    ///
    /// # Errors
    ///
    /// `epoll_create1` failed (out of fds or memory).
    pub fn new() -> io::Result<EpollMonitor> {
        Ok(EpollMonitor {
            epfd: epoll::create(epoll::CreateFlags::CLOEXEC)?,
            events: vec![NO_EVENT; Self::INITIAL_EVENTS],
            pwait2: true,
        })
    }

    /// Waits with `ppoll` on the epoll fd and a zero-timeout `epoll_wait`,
    /// the path taken on kernels without `epoll_pwait2`; for tests.
    #[doc(hidden)]
    #[must_use]
    pub fn force_ppoll_fallback(mut self) -> EpollMonitor {
        self.pwait2 = false;
        self
    }

    fn ctl(
        &self,
        op: libc::c_int,
        fd: RawFd,
        registration: Option<Registration>,
    ) -> io::Result<()> {
        let mut event = registration.map_or(NO_EVENT, |r| libc::epoll_event {
            events: events_for(r.interest),
            u64: r.token.0,
        });
        // SAFETY: epoll_ctl reads `event` (live for the call) and touches no
        // other memory; an fd that is not open or not pollable is an error
        // return, not undefined behaviour.
        let rc = unsafe { libc::epoll_ctl(self.epfd.as_raw_fd(), op, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// One wait with at most `timeout`: the number of events written, or
    /// `None` (or `EINTR`) to try again with the time that remains (the
    /// epoll fd was readable but the events were gone by the time we
    /// collected them, or `epoll_pwait2` is not to be had).
    ///
    /// Only a finite, non-zero timeout needs more than `epoll_wait`, whose
    /// milliseconds serve "never block" and "forever" exactly.
    fn wait_once(&mut self, timeout: Option<Duration>) -> io::Result<Option<usize>> {
        let (ptr, max) = (self.events.as_mut_ptr(), self.events.len() as libc::c_int);
        let epfd = self.epfd.as_raw_fd();
        let rc = match timeout {
            Some(t) if !t.is_zero() && self.pwait2 => {
                let ts = deadline::KernelTimespec::from(t);
                // A null signal mask leaves the mask unchanged, and its size
                // argument is then ignored.
                // SAFETY: `ptr` points to `max` writable epoll_event structs
                // (exclusively borrowed through `self`); `ts` outlives the call.
                let rc = unsafe {
                    libc::syscall(libc::SYS_epoll_pwait2, epfd, ptr, max, &ts, 0usize, 0usize)
                };
                // EPERM is no error epoll_pwait2 can give: a seccomp filter's
                // answer to a system call it does not know.
                if rc < 0 && matches!(errno(), libc::ENOSYS | libc::EPERM) {
                    self.pwait2 = false;
                    return Ok(None);
                }
                rc as libc::c_int
            }
            Some(t) if !t.is_zero() => {
                let mut pfd = libc::pollfd {
                    fd: epfd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                let ts = deadline::timespec(t);
                // SAFETY: `pfd` and `ts` are live locals for the call; a null
                // signal mask leaves the mask unchanged.
                match unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) } {
                    // SAFETY: `ptr` points to `max` writable epoll_event
                    // structs (exclusively borrowed through `self`).
                    1 => match unsafe { libc::epoll_wait(epfd, ptr, max, 0) } {
                        0 => return Ok(None),
                        rc => rc,
                    },
                    rc => rc,
                }
            }
            _ => {
                let ms = if timeout.is_some() { 0 } else { -1 };
                // SAFETY: `ptr` points to `max` writable epoll_event structs
                // (exclusively borrowed through `self`).
                unsafe { libc::epoll_wait(epfd, ptr, max, ms) }
            }
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(rc as usize))
    }
}

impl FdMonitor for EpollMonitor {
    fn name(&self) -> &'static str {
        "epoll"
    }

    /// `EPOLL_CTL_ADD`, `MOD` or `DEL`. Errors are the kernel's, `raw_os_error`
    /// included: `EPERM` for an fd epoll cannot watch (a regular file or a
    /// directory). Removing an fd that its owner already closed succeeds.
    fn update(
        &mut self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        match (old, new) {
            (None, None) => Ok(()),
            (None, Some(_)) => self.ctl(libc::EPOLL_CTL_ADD, fd, new),
            (Some(_), Some(_)) => match self.ctl(libc::EPOLL_CTL_MOD, fd, new) {
                // The fd was closed and its number reused: the kernel forgot
                // the old registration, so this is an addition.
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    self.ctl(libc::EPOLL_CTL_ADD, fd, new)
                }
                result => result,
            },
            (Some(_), None) => match self.ctl(libc::EPOLL_CTL_DEL, fd, None) {
                // Closed (EBADF), or closed and the number reused by a file
                // that is not in the set (ENOENT) or cannot be (EPERM): the
                // kernel dropped the registration with the last close.
                Err(e) if matches!(errno_of(&e), libc::EBADF | libc::ENOENT | libc::EPERM) => {
                    Ok(())
                }
                result => result,
            },
        }
    }

    /// Yes: `EPOLL_CTL_ADD` refuses an fd that is not open, and the kernel
    /// finds a registration by file and fd number.
    fn tracks_files(&self) -> bool {
        true
    }

    /// Asks the kernel with an `EPOLL_CTL_MOD` to the registration it holds:
    /// `EBADF` if the fd was closed, `ENOENT` if its number now names a file
    /// that this epoll does not watch (the kernel dropped the registration
    /// with the last close, or a `dup` keeps the old file open elsewhere),
    /// `EPERM` if it names a file epoll cannot watch. Setting the same
    /// events again changes nothing for a level-triggered registration.
    fn watches_current_file(&mut self, fd: RawFd, registration: Registration) -> bool {
        self.ctl(libc::EPOLL_CTL_MOD, fd, Some(registration))
            .is_ok()
    }

    fn wait(&mut self, events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        let n = deadline::retry(timeout, |left| self.wait_once(left))?.unwrap_or(0);
        events.extend(self.events[..n].iter().map(|ev| ReadyEvent {
            token: aio_core::Token(ev.u64),
            readiness: readiness_of(ev.events),
        }));
        if n == self.events.len() && n < Self::MAX_EVENTS {
            // Full: more may be ready. Collect more next time.
            self.events.resize((n * 2).min(Self::MAX_EVENTS), NO_EVENT);
        }
        Ok(())
    }

    fn pending(&mut self) -> Pending {
        Pending::Unknown
    }

    /// The epoll fd: readable whenever a watched fd is ready.
    fn loop_fd(&mut self) -> io::Result<BorrowedFd<'_>> {
        Ok(self.epfd.as_fd())
    }
}

fn errno() -> libc::c_int {
    errno_of(&io::Error::last_os_error())
}

fn errno_of(e: &io::Error) -> libc::c_int {
    e.raw_os_error().unwrap_or(0)
}

fn events_for(interest: Interest) -> u32 {
    let mut events = 0;
    if interest.is_readable() {
        events |= libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP;
    }
    if interest.is_writable() {
        events |= libc::EPOLLOUT;
    }
    events as u32
}

fn readiness_of(events: u32) -> Readiness {
    let has = |bits: libc::c_int| events & bits as u32 != 0;
    let mut readiness = Readiness::EMPTY;
    if has(libc::EPOLLIN | libc::EPOLLPRI) {
        readiness = readiness | Readiness::READABLE;
    }
    if has(libc::EPOLLOUT) {
        readiness = readiness | Readiness::WRITABLE;
    }
    if has(libc::EPOLLHUP | libc::EPOLLRDHUP) {
        readiness = readiness | Readiness::HANGUP;
    }
    if has(libc::EPOLLERR) {
        readiness = readiness | Readiness::ERROR;
    }
    readiness
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interest_and_readiness_map_both_ways() {
        let both = events_for(Interest::BOTH) as libc::c_int;
        assert_eq!(
            both,
            libc::EPOLLIN | libc::EPOLLPRI | libc::EPOLLRDHUP | libc::EPOLLOUT
        );
        let all = (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLERR) as u32;
        assert_eq!(
            readiness_of(all),
            Readiness::READABLE | Readiness::WRITABLE | Readiness::HANGUP | Readiness::ERROR
        );
        assert_eq!(readiness_of(libc::EPOLLHUP as u32), Readiness::HANGUP);
        assert_eq!(readiness_of(0), Readiness::EMPTY);
    }
}
