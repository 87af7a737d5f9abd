//! The kernel interfaces a context can run on, how each is set up, and why
//! one may be refused.

use std::fmt;
use std::io;
use std::str::FromStr;

use aio_core::{AioContext, FdMonitor};

/// A kernel interface for a context to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The best one available: io_uring, else epoll (starting on poll and
    /// moving to epoll once enough fds are registered), else poll.
    Auto,
    /// io_uring: poll requests on a ring whose completions the loop sees
    /// without a system call.
    IoUring,
    /// epoll, from the start.
    Epoll,
    /// `ppoll(2)`.
    Poll,
}

/// The number of handlers at which a context in auto mode moves from poll to
/// epoll. Measured (`cargo xtask bench --scenario loop-iteration`): a poll
/// iteration costs about 24 ns more per fd, epoll's is flat, and they cross
/// between 1 and 16 fds (about 8); at 16 epoll is already cheaper, while a
/// small context that churns registrations keeps poll's system-call-free
/// updates.
pub const EPOLL_UPGRADE_AT: usize = 16;

impl Backend {
    /// The name used in reports and in `AIO_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::IoUring => "io_uring",
            Backend::Epoll => "epoll",
            Backend::Poll => "poll",
        }
    }

    /// The facade's cargo feature that compiles this backend in (`None` for
    /// `Auto`, which takes whichever are).
    ///
    /// ```
    /// assert_eq!(aio::Backend::IoUring.cargo_feature(), Some("io-uring"));
    /// ```
    pub fn cargo_feature(self) -> Option<&'static str> {
        match self {
            Backend::Auto => None,
            Backend::IoUring => Some("io-uring"),
            Backend::Epoll => Some("epoll"),
            Backend::Poll => Some("poll"),
        }
    }

    /// Whether this backend was compiled in (its cargo feature was on when
    /// the facade was built); for `Auto`, whether any backend was. One that
    /// is not compiled in is never a candidate of the automatic choice, and
    /// [`open`](Backend::open) refuses it with `ErrorKind::Unsupported`.
    pub fn is_compiled_in(self) -> bool {
        match self {
            Backend::Auto => CANDIDATES.iter().any(|b| b.is_compiled_in()),
            Backend::IoUring => cfg!(feature = "io-uring"),
            Backend::Epoll => cfg!(feature = "epoll"),
            Backend::Poll => cfg!(feature = "poll"),
        }
    }

    /// Sets up this backend's monitor on its own, for a context built with
    /// [`ContextBuilder`](aio_core::ContextBuilder) or for running the
    /// conformance suite on it. `Auto` gives the best one available
    /// (without the poll-to-epoll upgrade, which needs a context).
    ///
    /// # Errors
    ///
    /// `Unsupported` if the backend is not compiled in (for `Auto`: if no
    /// backend is), naming the cargo feature to enable; the machine's error
    /// if it refuses the backend, see [`describe_refusal`] for the causes.
    pub fn open(self) -> io::Result<Box<dyn FdMonitor>> {
        match self {
            Backend::Auto => crate::select::select(&|b: Backend| b.open()).map(|plan| plan.monitor),
            #[cfg(feature = "io-uring")]
            Backend::IoUring => Ok(Box::new(fdmon_uring::UringMonitor::new()?)),
            #[cfg(feature = "epoll")]
            Backend::Epoll => Ok(Box::new(fdmon_epoll::EpollMonitor::new()?)),
            #[cfg(feature = "poll")]
            Backend::Poll => Ok(Box::new(fdmon_poll::PollMonitor::new())),
            #[allow(unreachable_patterns)]
            other => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the {other} backend is not compiled in (enable aio's cargo feature `{}`)",
                    other.cargo_feature().unwrap_or_default()
                ),
            )),
        }
    }
}

/// The backends a build can hold, best first: the order of the automatic
/// choice.
pub(crate) const CANDIDATES: [Backend; 3] = [Backend::IoUring, Backend::Epoll, Backend::Poll];

/// The error of a context asked for in a build with no backend compiled in
/// (`default-features = false` and none of `io-uring`, `epoll`, `poll`).
pub(crate) fn no_backend_compiled_in() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "no backend is compiled in: enable at least one of aio's cargo features \
         `io-uring`, `epoll`, `poll` (or build the context on a monitor of your own: \
         ContextBuilder::new(monitor))",
    )
}

/// Makes sure another event loop can watch `ctx` (it has a
/// [loop fd](AioContext::loop_fd)): a context on io_uring with deferred task
/// running, whose ring cannot wake another loop, moves to io_uring with the
/// cooperative mode, or else to epoll.
///
/// # Errors
///
/// If no monitor that can be watched could be set up and take the
/// registrations; called from a callback (`ResourceBusy`).
pub fn make_watchable(ctx: &AioContext) -> io::Result<()> {
    let refusal = match ctx.loop_fd() {
        Err(e) if e.kind() == io::ErrorKind::Unsupported => e,
        other => return other.map(drop),
    };
    #[cfg(feature = "io-uring")]
    {
        use fdmon_uring::{TaskRun, UringMonitor, UringOptions};
        let mode = TaskRun::CooperativeFlag;
        let why = format!(
            "to be watched by another event loop ({refusal}); now in task-running mode {mode:?}"
        );
        if let Ok(monitor) = UringMonitor::with_options(UringOptions::default().task_run(mode))
            && ctx.set_monitor(Box::new(monitor), why).is_ok()
        {
            return Ok(());
        }
    }
    let why = format!("to be watched by another event loop ({refusal})");
    ctx.set_monitor(Backend::Epoll.open()?, why)
}

/// Says why a backend's setup failed, by cause: no kernel support
/// (`ENOSYS`), not permitted (`EPERM`: a seccomp filter, or
/// `kernel.io_uring_disabled`), the locked-memory limit (`ENOMEM`), or a
/// missing io_uring opcode.
///
/// ```
/// use std::io;
///
/// let e = io::Error::from_raw_os_error(libc::EPERM);
/// assert!(aio::describe_refusal(&e).contains("seccomp"));
/// ```
pub fn describe_refusal(e: &io::Error) -> String {
    let cause = match e.raw_os_error() {
        Some(libc::ENOSYS) => "no kernel support",
        Some(libc::EPERM) => "not permitted (a seccomp filter, or kernel.io_uring_disabled)",
        Some(libc::ENOMEM) => "the locked-memory limit is too low (RLIMIT_MEMLOCK)",
        _ if e.kind() == io::ErrorKind::Unsupported => "not supported",
        _ => "setup failed",
    };
    format!("{cause}: {e}")
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = io::Error;

    fn from_str(s: &str) -> io::Result<Backend> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Backend::Auto),
            "io_uring" | "io-uring" | "uring" => Ok(Backend::IoUring),
            "epoll" => Ok(Backend::Epoll),
            "poll" => Ok(Backend::Poll),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown backend {other:?} (expected auto, io_uring, epoll or poll)"),
            )),
        }
    }
}
