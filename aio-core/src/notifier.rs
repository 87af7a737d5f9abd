//! `EventNotifier`: a file descriptor that one thread sets and another waits
//! on; an eventfd, or a non-blocking pipe where eventfd is unavailable.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use rustix::event::{EventfdFlags, eventfd};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};

/// A wake-up flag with a file descriptor, in the manner of QEMU's
/// `EventNotifier`: [`set`](EventNotifier::set) makes the fd readable,
/// [`test_and_clear`](EventNotifier::test_and_clear) drains it.
///
/// Register it with a context like any fd (its read side is
/// [`as_fd`](EventNotifier::as_fd)) to run a handler when it is set.
///
/// ```
/// use aio_core::EventNotifier;
///
/// let n = EventNotifier::new()?;
/// assert!(!n.test_and_clear()?);
/// n.set()?;
/// n.set()?;
/// assert!(n.test_and_clear()?);
/// assert!(!n.test_and_clear()?);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct EventNotifier {
    read: OwnedFd,
    /// The write end of the pipe; `None` for an eventfd, which is both.
    write: Option<OwnedFd>,
}

/// Which kernel object backs an [`EventNotifier`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotifierKind {
    /// `eventfd(2)`: one fd, an 8-byte counter.
    Eventfd,
    /// `pipe2(2)`: two fds, for kernels without eventfd.
    Pipe,
}

impl EventNotifier {
    /// An eventfd, or a pipe if the kernel has no eventfd.
    pub fn new() -> io::Result<EventNotifier> {
        match EventNotifier::with_kind(NotifierKind::Eventfd) {
            Err(e) if e.raw_os_error() == Some(Errno::NOSYS.raw_os_error()) => {
                EventNotifier::with_kind(NotifierKind::Pipe)
            }
            other => other,
        }
    }

    /// A notifier of the given kind, non-blocking and close-on-exec.
    pub fn with_kind(kind: NotifierKind) -> io::Result<EventNotifier> {
        match kind {
            NotifierKind::Eventfd => Ok(EventNotifier {
                read: eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?,
                write: None,
            }),
            NotifierKind::Pipe => {
                let (read, write) = pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
                Ok(EventNotifier {
                    read,
                    write: Some(write),
                })
            }
        }
    }

    /// Which kernel object backs this notifier.
    pub fn kind(&self) -> NotifierKind {
        if self.write.is_some() {
            NotifierKind::Pipe
        } else {
            NotifierKind::Eventfd
        }
    }

    /// Makes the fd readable. Setting an already set notifier is fine.
    pub fn set(&self) -> io::Result<()> {
        let (fd, bytes): (BorrowedFd<'_>, &[u8]) = match &self.write {
            None => (self.read.as_fd(), &1u64.to_ne_bytes()),
            Some(write) => (write.as_fd(), &[1u8]),
        };
        loop {
            match rustix::io::write(fd, bytes) {
                // A full pipe or a saturated counter is still set.
                Ok(_) | Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Drains the fd. Returns whether it was set.
    pub fn test_and_clear(&self) -> io::Result<bool> {
        let mut buf = [0u8; 512];
        let mut was_set = false;
        loop {
            match rustix::io::read(&self.read, &mut buf) {
                Ok(0) => return Ok(was_set),
                Ok(n) => {
                    was_set = true;
                    if self.write.is_none() || n < buf.len() {
                        return Ok(true);
                    }
                }
                Err(Errno::AGAIN) => return Ok(was_set),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl AsFd for EventNotifier {
    /// The side to wait on (the read end).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }
}

impl AsRawFd for EventNotifier {
    fn as_raw_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set_and_clear(kind: NotifierKind) {
        let n = EventNotifier::with_kind(kind).unwrap();
        assert_eq!(n.kind(), kind);
        assert!(!n.test_and_clear().unwrap());
        for _ in 0..1000 {
            n.set().unwrap();
        }
        assert!(n.test_and_clear().unwrap());
        assert!(!n.test_and_clear().unwrap(), "one clear drains every set");
    }

    #[test]
    fn eventfd_sets_and_clears() {
        set_and_clear(NotifierKind::Eventfd);
    }

    #[test]
    fn pipe_fallback_sets_and_clears() {
        set_and_clear(NotifierKind::Pipe);
    }
}
