//! The `FdMonitor` trait: the one seam between the core and a kernel interface.
//!
//! Everything a backend does not need to know (deletion deferral, busy polling,
//! bottom halves, timers, the notify protocol) stays in the core, so a monitor
//! is three operations: apply a registration change, wait into a ready list,
//! and say what it can see without a system call.

use std::fmt;
use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::time::Duration;

/// Identifies one registration of one handler.
///
/// A token carries a slot index and a generation. Every registration
/// (including the replacement of a handler on the same fd) gets a new token,
/// so an event that a monitor reports late, for a handler that has since been
/// removed or replaced, no longer resolves and is dropped by the core.
///
/// A token's top bit is always clear: values with it set are
/// [operations' ids](crate::OpId), so that a monitor whose ring carries both
/// can tell them apart by `user_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Token(pub u64);

/// What a registration asks the monitor to watch for.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Interest(u8);

impl fmt::Debug for Interest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match (self.is_readable(), self.is_writable()) {
            (false, false) => "NONE",
            (true, false) => "READABLE",
            (false, true) => "WRITABLE",
            (true, true) => "BOTH",
        })
    }
}

impl Interest {
    /// Nothing: the fd is registered with the core but not watched.
    pub const NONE: Interest = Interest(0);
    /// Readability (and, implicitly, hang-up and error).
    pub const READABLE: Interest = Interest(1);
    /// Writability (and, implicitly, error).
    pub const WRITABLE: Interest = Interest(2);
    /// Both directions.
    pub const BOTH: Interest = Interest(3);

    /// Whether readability is asked for.
    pub const fn is_readable(self) -> bool {
        self.0 & Self::READABLE.0 != 0
    }

    /// Whether writability is asked for.
    pub const fn is_writable(self) -> bool {
        self.0 & Self::WRITABLE.0 != 0
    }

    /// Whether nothing is asked for.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The union of two interests.
    #[must_use]
    pub const fn with(self, other: Interest) -> Interest {
        Interest(self.0 | other.0)
    }
}

/// What a monitor saw on an fd.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Readiness(u8);

impl Readiness {
    /// Nothing.
    pub const EMPTY: Readiness = Readiness(0);
    /// Data can be read (`POLLIN`, `EPOLLIN`, `POLLPRI`).
    pub const READABLE: Readiness = Readiness(1);
    /// Data can be written (`POLLOUT`).
    pub const WRITABLE: Readiness = Readiness(2);
    /// The peer hung up (`POLLHUP`, `POLLRDHUP`); dispatched as readable.
    pub const HANGUP: Readiness = Readiness(4);
    /// An error is pending on the fd (`POLLERR`, `POLLNVAL`); dispatched as
    /// both readable and writable so that whichever callback exists sees it.
    pub const ERROR: Readiness = Readiness(8);
    /// Set by the core, never by a monitor: a `poll` callback said yes and
    /// `poll_ready` is to run.
    pub(crate) const POLL_READY: Readiness = Readiness(0x80);

    /// Whether no bit is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `other` is set.
    pub const fn contains(self, other: Readiness) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any bit of `other` is set.
    pub const fn intersects(self, other: Readiness) -> bool {
        self.0 & other.0 != 0
    }

    /// The union of two readiness sets.
    #[must_use]
    pub const fn with(self, other: Readiness) -> Readiness {
        Readiness(self.0 | other.0)
    }

    /// Whether a read callback should run for this readiness.
    pub const fn wants_read(self) -> bool {
        self.intersects(
            Readiness::READABLE
                .with(Readiness::HANGUP)
                .with(Readiness::ERROR),
        )
    }

    /// Whether a write callback should run for this readiness.
    pub const fn wants_write(self) -> bool {
        self.intersects(Readiness::WRITABLE.with(Readiness::ERROR))
    }
}

impl std::ops::BitOr for Readiness {
    type Output = Readiness;
    fn bitor(self, rhs: Readiness) -> Readiness {
        self.with(rhs)
    }
}

impl std::ops::BitOr for Interest {
    type Output = Interest;
    fn bitor(self, rhs: Interest) -> Interest {
        self.with(rhs)
    }
}

/// One registration as a monitor sees it: the token to report and what to
/// watch for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registration {
    /// Reported back in every [`ReadyEvent`] for this registration.
    pub token: Token,
    /// What to watch for; never empty (the core passes `None` instead).
    pub interest: Interest,
}

/// One entry of the ready list that [`FdMonitor::wait`] fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadyEvent {
    /// The token of the registration that became ready.
    pub token: Token,
    /// What the monitor saw.
    pub readiness: Readiness,
}

/// What a monitor can tell about readiness without a system call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pending {
    /// The monitor cannot tell without a system call (poll, epoll): the core
    /// must call [`FdMonitor::wait`] to learn anything, and busy polling is
    /// possible only when every handler has a `poll` callback.
    Unknown,
    /// The monitor can see readiness in user space (io_uring's completion
    /// ring) and sees none now: a zero-timeout wait may be skipped.
    No,
    /// Readiness is waiting to be collected by [`FdMonitor::wait`].
    Yes,
    /// No readiness is known, but the monitor has requests for the kernel
    /// (io_uring's queued poll requests) without which it cannot see some
    /// fds: a zero-timeout [`FdMonitor::wait`] hands them over. The core
    /// does so before and during the busy-poll window and goes on polling
    /// (a monitor that cannot show readiness answers
    /// [`Pending::Unknown`] again once they are in, and the window then
    /// measures what a pure peek costs); otherwise it treats this like
    /// [`Pending::Unknown`].
    Submit,
}

/// A kernel interface that tells the event loop which fds are ready.
///
/// This is the whole contract a backend implements; the core owns the handler
/// registry, deletion deferral, busy polling, timers and the notify protocol.
///
/// # The contract
///
/// * **Registrations.** [`update`](FdMonitor::update) receives, for one fd,
///   the registration the monitor holds now (`old`) and the one it must hold
///   after the call (`new`); `None` means "not watched". The core calls it
///   for additions (`None -> Some`), replacements (`Some -> Some`, with a new
///   token and possibly a new interest) and removals (`Some -> None`). If it
///   returns an error, the monitor must still hold `old`: the core then keeps
///   its own state unchanged and returns the error to its caller.
/// * **Removal of a closed fd** must succeed: the owner of an fd may close it
///   before removing its handler, and the kernel has already forgotten it.
/// * **Level semantics.** An fd that is ready and not drained must be
///   reported again by the next `wait`, as `poll(2)` and level-triggered
///   epoll do.
/// * **Tokens.** Every event carries the token of the registration it was
///   observed for. A monitor may report an event for a token it no longer
///   holds (an io_uring completion that arrives after the removal): the core
///   drops it. Report each token at most once per `wait`, with every bit seen
///   merged into one [`Readiness`].
/// * **Waiting.** [`wait`](FdMonitor::wait) appends ready events to `events`
///   (which the core cleared and reuses, so a steady-state wait allocates
///   nothing) and returns when at least one event is ready or the timeout has
///   passed. `None` waits forever; `Some(Duration::ZERO)` never blocks.
///   Timeouts are honoured with nanosecond resolution where the kernel
///   allows it: a 100 µs timeout must neither become a busy loop nor be
///   rounded up to a millisecond. `EINTR` is retried with the time that
///   remains; other errors are returned.
/// * **Pending readiness.** [`pending`](FdMonitor::pending) must be cheap
///   and make no system call: the core calls it many times a microsecond
///   while busy polling.
///
/// # Example
///
/// A monitor that watches nothing and sleeps for the timeout: enough to run
/// bottom halves and timers on a context.
///
/// ```
/// use std::{io, os::fd::RawFd, time::Duration};
/// use aio_core::{AioContext, FdMonitor, Pending, ReadyEvent, Registration};
///
/// struct Sleeper;
///
/// impl FdMonitor for Sleeper {
///     fn name(&self) -> &'static str { "sleeper" }
///     fn update(&mut self, _fd: RawFd, _old: Option<Registration>,
///               _new: Option<Registration>) -> io::Result<()> {
///         Ok(()) // a real monitor records the registration here
///     }
///     fn wait(&mut self, _events: &mut Vec<ReadyEvent>,
///             timeout: Option<Duration>) -> io::Result<()> {
///         std::thread::sleep(timeout.unwrap_or(Duration::from_millis(1)));
///         Ok(())
///     }
///     fn pending(&mut self) -> Pending { Pending::Unknown }
/// }
///
/// let ctx = AioContext::with_monitor(Box::new(Sleeper))?;
/// ctx.schedule_oneshot(|_| println!("ran"));
/// assert!(ctx.poll(true)?);
/// # Ok::<(), io::Error>(())
/// ```
pub trait FdMonitor {
    /// A short name for reports (`"poll"`, `"epoll"`, `"io_uring"`).
    fn name(&self) -> &'static str;

    /// Applies one registration change for `fd`: from `old` to `new`.
    fn update(
        &mut self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()>;

    /// Waits until some registered fd is ready or `timeout` passes, appending
    /// the ready registrations to `events`.
    fn wait(&mut self, events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()>;

    /// Says, without a system call, whether readiness is waiting.
    fn pending(&mut self) -> Pending;

    /// The monitor's own engine for operations, if it has one (io_uring:
    /// requests on the same ring as the fd registrations, completed with
    /// the same wait). The default has none: the context's fallback engine
    /// (a thread pool) serves its operations.
    ///
    /// A monitor with an engine reports the completions it reaps in
    /// [`wait`](FdMonitor::wait) through the engine, not as ready events,
    /// and shows them in [`pending`](FdMonitor::pending) as it shows
    /// readiness.
    fn ops(&mut self) -> Option<&mut dyn crate::OpEngine> {
        None
    }

    /// Whether the monitor knows which file each of its registrations
    /// watches, as epoll does (the kernel keys a registration by file and
    /// fd number): then [`update`](FdMonitor::update) refuses to add an fd
    /// that is not open, with `EBADF`, and
    /// [`watches_current_file`](FdMonitor::watches_current_file) can tell a
    /// registration whose fd was closed, or whose number was reused, from
    /// one that still watches the file its fd names. The core relies on
    /// both and skips its own check of the fds such a monitor watches (one
    /// `fstat` per registration, in release builds).
    ///
    /// The default says no.
    fn tracks_files(&self) -> bool {
        false
    }

    /// Whether `registration`, which this monitor holds for `fd`, still
    /// watches the file that `fd` names now: `false` if `fd` was closed, or
    /// its number now names another file. Asked only of a monitor that
    /// [tracks files](FdMonitor::tracks_files), and only by
    /// [`AioContext::stale_fds`](crate::AioContext::stale_fds) and moves to
    /// another monitor, so it may make a system call.
    ///
    /// The default says yes.
    fn watches_current_file(&mut self, fd: RawFd, registration: Registration) -> bool {
        let _ = (fd, registration);
        true
    }

    /// A file descriptor that is readable whenever a zero-timeout
    /// [`wait`](FdMonitor::wait) would report something (an epoll fd, an
    /// io_uring ring fd), so that another event loop can sleep on it when it
    /// drives the context ([`AioContext::prepare`](crate::AioContext::prepare)).
    ///
    /// The default says the monitor has none (`Unsupported`).
    fn loop_fd(&mut self) -> io::Result<BorrowedFd<'_>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "the {} monitor cannot be watched by another event loop",
                self.name()
            ),
        ))
    }
}

/// Implements [`FdMonitor`] for a pointer to a monitor by forwarding every
/// method, the defaulted ones included, so that a wrapped monitor keeps its
/// [loop fd](FdMonitor::loop_fd) and its [operations engine](FdMonitor::ops).
/// A method added to the trait is forwarded here, once.
macro_rules! forward_monitor {
    ($($pointer:ty),*) => {$(
        impl<M: FdMonitor + ?Sized> FdMonitor for $pointer {
            fn name(&self) -> &'static str {
                (**self).name()
            }

            fn update(
                &mut self,
                fd: RawFd,
                old: Option<Registration>,
                new: Option<Registration>,
            ) -> io::Result<()> {
                (**self).update(fd, old, new)
            }

            fn wait(
                &mut self,
                events: &mut Vec<ReadyEvent>,
                timeout: Option<Duration>,
            ) -> io::Result<()> {
                (**self).wait(events, timeout)
            }

            fn pending(&mut self) -> Pending {
                (**self).pending()
            }

            fn ops(&mut self) -> Option<&mut dyn crate::OpEngine> {
                (**self).ops()
            }

            fn loop_fd(&mut self) -> io::Result<BorrowedFd<'_>> {
                (**self).loop_fd()
            }

            fn tracks_files(&self) -> bool {
                (**self).tracks_files()
            }

            fn watches_current_file(&mut self, fd: RawFd, registration: Registration) -> bool {
                (**self).watches_current_file(fd, registration)
            }
        }
    )*};
}

forward_monitor!(Box<M>, &mut M);
