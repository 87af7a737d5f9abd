//! `Builder`: the backend (forced by the program, by `AIO_BACKEND`, or the
//! best available), polling parameters and clock of a new context.

use std::env;
use std::error::Error;
use std::fmt;
use std::io;

use aio_core::{AioContext, Clock, PollParams};
use aio_pool::{Pool, PoolOptions};

use crate::backend::{Backend, describe_refusal};
use crate::select::{Open, plan};

/// The environment variable that forces a backend.
pub const BACKEND_ENV: &str = "AIO_BACKEND";

/// Builds an [`AioContext`]: backend, polling parameters, clock.
///
/// ```
/// use aio::prelude::*;
///
/// let ctx = AioContext::builder()
///     .backend(Backend::Poll)
///     .poll_params(PollParams::IOTHREAD)
///     .build()?;
/// assert_eq!(ctx.backend().name, "poll");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
#[must_use = "a builder does nothing until build() is called"]
pub struct Builder {
    backend: Option<Backend>,
    params: PollParams,
    clock: Option<Clock>,
    pool: PoolOptions,
}

impl Builder {
    /// The defaults: best backend (or `AIO_BACKEND`), polling off,
    /// monotonic clock.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Forces a backend; this wins over `AIO_BACKEND`. A forced backend
    /// that the machine refuses makes [`build`](Builder::build) fail.
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = Some(backend);
        self
    }

    /// Sets the busy-polling parameters (default: off).
    pub fn poll_params(mut self, params: PollParams) -> Builder {
        self.params = params;
        self
    }

    /// Sets the clock (default: monotonic).
    pub fn clock(mut self, clock: impl Into<Clock>) -> Builder {
        self.clock = Some(clock.into());
        self
    }

    /// Sizes the thread pool that carries out operations where the backend
    /// has no ring (default: [`PoolOptions::default`]).
    ///
    /// ```
    /// use aio::prelude::*;
    /// use aio::{OpKind, PoolOptions};
    ///
    /// let ctx = AioContext::builder()
    ///     .backend(Backend::Epoll)
    ///     .pool_options(PoolOptions { max_workers: 4, ..PoolOptions::default() })
    ///     .build()?;
    /// assert_eq!(ctx.op_engine(OpKind::Read), Some("thread pool"));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pool_options(mut self, options: PoolOptions) -> Builder {
        self.pool = options;
        self
    }

    /// Creates the context.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `AIO_BACKEND` is not a known backend name; the
    /// error of a forced backend (`Unsupported` if it is not compiled in);
    /// the error of the last candidate if every one failed;
    /// `Unsupported` if no backend is compiled in.
    pub fn build(self) -> io::Result<AioContext> {
        self.build_with(&|backend: Backend| backend.open())
    }

    /// [`build`](Builder::build) with the backends that `open` sets up.
    fn build_with(self, open: Open<'_>) -> io::Result<AioContext> {
        let forced = forced(self.backend, env::var(BACKEND_ENV))?;
        let plan = plan(forced, open).map_err(|source| match forced {
            Some((backend, by)) => BackendError {
                backend,
                by,
                source,
            }
            .into_io(),
            None => source,
        })?;
        let mut builder = plan
            .builder()
            .poll_params(self.params)
            .ops_fallback(move |remote| Box::new(Pool::with_options(remote, self.pool)));
        if let Some(clock) = self.clock {
            builder = builder.clock(clock);
        }
        builder.build()
    }
}

/// A forced backend that could not be set up: which, forced by whom, and
/// the error it failed with, kept whole as the [source](Error::source) so
/// that a program can tell `EPERM` (a seccomp filter,
/// `kernel.io_uring_disabled`) from `ENOMEM` (the locked-memory limit).
/// [`Builder::build`] returns it inside an `io::Error` of the same kind.
///
/// ```
/// use std::error::Error;
/// use aio::prelude::*;
///
/// // Where io_uring works this builds; where it is refused, the cause is kept.
/// if let Err(e) = AioContext::builder().backend(Backend::IoUring).build() {
///     let refusal = e.get_ref().and_then(|e| e.downcast_ref::<aio::BackendError>());
///     let errno = refusal.and_then(|r| r.source_error().raw_os_error());
///     println!("refused: {e} (errno {errno:?})");
/// }
/// ```
#[derive(Debug)]
pub struct BackendError {
    backend: Backend,
    by: &'static str,
    source: io::Error,
}

impl BackendError {
    /// The backend that was forced.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The error its setup failed with, as the kernel gave it.
    pub fn source_error(&self) -> &io::Error {
        &self.source
    }

    fn into_io(self) -> io::Error {
        io::Error::new(self.source.kind(), self)
    }
}

impl fmt::Display for BackendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} forced by {}: {}",
            self.backend,
            self.by,
            describe_refusal(&self.source)
        )
    }
}

impl Error for BackendError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&self.source)
    }
}

/// The backend forced by the builder or, failing that, by `AIO_BACKEND`,
/// and who forced it; `None` to pick the best. The builder's explicit choice
/// (`Auto` included) wins over the variable.
fn forced(
    builder: Option<Backend>,
    env: Result<String, env::VarError>,
) -> io::Result<Option<(Backend, &'static str)>> {
    if let Some(backend) = builder {
        return Ok((backend != Backend::Auto).then_some((backend, "builder")));
    }
    let value = match env {
        Ok(value) => value,
        Err(env::VarError::NotPresent) => return Ok(None),
        Err(env::VarError::NotUnicode(_)) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{BACKEND_ENV} is not valid UTF-8"),
            ));
        }
    };
    let backend = value
        .parse::<Backend>()
        .map_err(|e| io::Error::new(e.kind(), format!("{BACKEND_ENV}: {e}")))?;
    Ok((backend != Backend::Auto).then_some((backend, BACKEND_ENV)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn var(value: &str) -> Result<String, env::VarError> {
        Ok(value.to_owned())
    }

    #[test]
    fn nothing_forced_picks_the_best() {
        assert_eq!(forced(None, Err(env::VarError::NotPresent)).unwrap(), None);
        assert_eq!(forced(None, var("auto")).unwrap(), None);
        assert_eq!(
            forced(Some(Backend::Auto), var("poll")).unwrap(),
            None,
            "the builder's Auto wins"
        );
    }

    #[test]
    fn environment_forces_a_backend() {
        assert_eq!(
            forced(None, var("poll")).unwrap(),
            Some((Backend::Poll, BACKEND_ENV))
        );
        assert_eq!(
            forced(None, var(" POLL ")).unwrap(),
            Some((Backend::Poll, BACKEND_ENV))
        );
    }

    #[test]
    fn builder_wins_over_environment() {
        assert_eq!(
            forced(Some(Backend::Poll), var("bogus")).unwrap(),
            Some((Backend::Poll, "builder"))
        );
    }

    #[test]
    fn unknown_backend_is_an_error() {
        let err = forced(None, var("kqueue")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains(BACKEND_ENV), "{err}");
        assert!(err.to_string().contains("kqueue"), "{err}");
        let not_unicode = env::VarError::NotUnicode(std::ffi::OsString::from("x"));
        assert_eq!(
            forced(None, Err(not_unicode)).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }

    #[test]
    fn a_forced_backend_that_is_refused_is_an_error() {
        let refuse = |backend: Backend| match backend {
            Backend::IoUring => Err(io::Error::from_raw_os_error(libc::EPERM)),
            other => other.open(),
        };
        let err = Builder::new()
            .backend(Backend::IoUring)
            .build_with(&refuse)
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string().contains("io_uring forced by builder"),
            "{err}"
        );
        let refusal = err
            .get_ref()
            .and_then(|e| e.downcast_ref::<BackendError>())
            .expect("a BackendError inside");
        assert_eq!(refusal.backend(), Backend::IoUring);
        let source = err.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(
            source.and_then(io::Error::raw_os_error),
            Some(libc::EPERM),
            "the errno is kept as the source"
        );
        assert!(err.to_string().contains("seccomp"), "{err}");
    }

    #[test]
    fn the_environment_forces_io_uring_and_its_refusal_is_an_error_too() {
        let forced = forced(None, var("io_uring")).unwrap();
        assert_eq!(forced, Some((Backend::IoUring, BACKEND_ENV)));
    }

    #[test]
    fn auto_mode_moves_from_poll_to_epoll() {
        let no_uring = |backend: Backend| match backend {
            Backend::IoUring => Err(io::Error::from_raw_os_error(libc::ENOSYS)),
            other => other.open(),
        };
        let ctx = Builder::new()
            .backend(Backend::Auto)
            .build_with(&no_uring)
            .unwrap();
        let info = ctx.backend();
        assert_eq!(info.name, "poll");
        let planned = aio_core::PlannedUpgrade {
            name: "epoll",
            at_handlers: crate::EPOLL_UPGRADE_AT,
        };
        assert_eq!(info.upgrade, Some(planned));
        assert!(info.to_string().starts_with("poll (best available), moving to epoll at 16 handlers; io_uring skipped: no kernel support"), "{info}");
        // Cross the threshold with one fd ready: the move loses nothing.
        let fds: Vec<_> = (0..crate::EPOLL_UPGRADE_AT)
            .map(|_| aio_core::EventNotifier::new().unwrap())
            .collect();
        let runs = std::rc::Rc::new(std::cell::Cell::new(0));
        for fd in &fds {
            let r = std::rc::Rc::clone(&runs);
            let handler = aio_core::FdHandler::new().on_read(move |_| r.set(r.get() + 1));
            ctx.set_fd_handler(fd, Some(handler)).unwrap();
        }
        fds[0].set().unwrap();
        ctx.poll(false).unwrap();
        assert_eq!(runs.get(), 1, "the fd ready before the move was dispatched");
        let info = ctx.backend();
        assert_eq!(info.name, "epoll");
        assert_eq!(
            info.selection,
            aio_core::Selection::Upgraded {
                from: "poll",
                at_handlers: crate::EPOLL_UPGRADE_AT
            }
        );
    }

    #[test]
    fn poll_then_epoll_can_be_forced_where_io_uring_works() {
        let ctx = Builder::new()
            .backend(Backend::PollThenEpoll)
            .build()
            .unwrap();
        assert_eq!(Backend::of(&ctx), Some(Backend::Poll));
        assert_eq!(
            ctx.backend().to_string(),
            "poll (forced by builder), moving to epoll at 16 handlers"
        );
        let fds: Vec<_> = (0..crate::EPOLL_UPGRADE_AT)
            .map(|_| aio_core::EventNotifier::new().unwrap())
            .collect();
        for fd in &fds {
            let handler = aio_core::FdHandler::new().on_read(|_| {});
            ctx.set_fd_handler(fd, Some(handler)).unwrap();
        }
        ctx.poll(false).unwrap();
        assert_eq!(Backend::of(&ctx), Some(Backend::Epoll), "moved at 16");
        assert_eq!(
            forced(None, var("poll-then-epoll")).unwrap(),
            Some((Backend::PollThenEpoll, BACKEND_ENV))
        );
    }

    #[test]
    fn a_custom_monitor_is_no_facade_backend() {
        let ctx = aio_core::ContextBuilder::new(Box::new(aio_core::testing::SleepMonitor::new()))
            .build()
            .unwrap();
        assert_eq!(Backend::of(&ctx), None);
    }

    #[test]
    fn the_report_says_which_backend_and_why() {
        let ctx = Builder::new().backend(Backend::Poll).build().unwrap();
        let info = ctx.backend();
        assert_eq!(info.name, "poll");
        assert_eq!(
            info.selection,
            aio_core::Selection::Forced { by: "builder" }
        );
        assert_eq!(info.to_string(), "poll (forced by builder)");
    }
}
