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
    /// The best one available: io_uring, else poll-then-epoll, else epoll,
    /// else poll (among those compiled in and allowed by the machine).
    Auto,
    /// io_uring: poll requests on a ring whose completions the loop sees
    /// without a system call.
    IoUring,
    /// epoll, from the start.
    Epoll,
    /// `ppoll(2)`, for as long as the context lives.
    Poll,
    /// QEMU's mode where it has no ring: start on `ppoll(2)`, whose
    /// registration changes cost no system call, and move to epoll once
    /// [`EPOLL_UPGRADE_AT`] handlers are registered, where a poll iteration
    /// costs more than an epoll one. Where io_uring works, `Auto` takes
    /// io_uring instead; this asks for the QEMU-style start there too.
    PollThenEpoll,
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
            Backend::PollThenEpoll => "poll-then-epoll",
        }
    }

    /// The backend whose monitor `ctx` runs on now; `None` for a monitor
    /// that is not one of the facade's (one given through
    /// [`ContextBuilder`](aio_core::ContextBuilder)). A context in
    /// poll-then-epoll mode reads `Poll` until its move, then `Epoll`; its
    /// [report](AioContext::backend) says how it got there.
    ///
    /// ```
    /// use aio::prelude::*;
    ///
    /// let ctx = AioContext::builder().backend(Backend::Epoll).build()?;
    /// assert_eq!(Backend::of(&ctx), Some(Backend::Epoll));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn of(ctx: &AioContext) -> Option<Backend> {
        let name = ctx.backend().name;
        CANDIDATES.into_iter().find(|b| b.name() == name)
    }

    /// The facade's cargo features that compile this backend in (none for
    /// `Auto`, which takes whichever are).
    ///
    /// ```
    /// use aio::Backend;
    ///
    /// assert_eq!(Backend::IoUring.cargo_features(), ["io-uring"]);
    /// assert_eq!(Backend::PollThenEpoll.cargo_features(), ["poll", "epoll"]);
    /// ```
    pub fn cargo_features(self) -> &'static [&'static str] {
        match self {
            Backend::Auto => &[],
            Backend::IoUring => &["io-uring"],
            Backend::Epoll => &["epoll"],
            Backend::Poll => &["poll"],
            Backend::PollThenEpoll => &["poll", "epoll"],
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
            Backend::PollThenEpoll => cfg!(all(feature = "poll", feature = "epoll")),
        }
    }

    /// Sets up this backend's monitor on its own, for a context built with
    /// [`ContextBuilder`](aio_core::ContextBuilder) or for running the
    /// conformance suite on it. `Auto` gives the best one available, and
    /// `PollThenEpoll` the poll monitor, both without the move to epoll,
    /// which needs a context.
    ///
    /// # Errors
    ///
    /// `Unsupported` if the backend is not compiled in (for `Auto`: if no
    /// backend is), naming the cargo feature to enable; the machine's error
    /// if it refuses the backend, see [`describe_refusal`] for the causes.
    pub fn open(self) -> io::Result<Box<dyn FdMonitor>> {
        match self {
            Backend::Auto => {
                crate::select::plan(None, &|b: Backend| b.open()).map(|plan| plan.monitor)
            }
            #[cfg(feature = "io-uring")]
            Backend::IoUring => Ok(Box::new(fdmon_uring::UringMonitor::new()?)),
            #[cfg(feature = "epoll")]
            Backend::Epoll => Ok(Box::new(fdmon_epoll::EpollMonitor::new()?)),
            #[cfg(feature = "poll")]
            Backend::Poll => Ok(Box::new(fdmon_poll::PollMonitor::new())),
            #[cfg(all(feature = "poll", feature = "epoll"))]
            Backend::PollThenEpoll => Backend::Poll.open(),
            #[allow(unreachable_patterns)]
            other => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the {other} backend is not compiled in (enable aio's cargo {})",
                    match other.cargo_features() {
                        [one] => format!("feature `{one}`"),
                        many => format!("features `{}`", many.join("` and `")),
                    }
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
            "poll-then-epoll" | "poll_then_epoll" => Ok(Backend::PollThenEpoll),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "unknown backend {other:?} (expected auto, io_uring, epoll, poll or \
                     poll-then-epoll)"
                ),
            )),
        }
    }
}
