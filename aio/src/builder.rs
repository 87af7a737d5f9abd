//! Backend selection: which monitor a context runs on, forced by the user
//! or the best the machine allows, with the reasons recorded.

use std::env;
use std::fmt;
use std::io;
use std::str::FromStr;

use aio_core::{AioContext, BackendInfo, Clock, ContextBuilder, FdMonitor, PollParams};

/// The environment variable that forces a backend.
pub const BACKEND_ENV: &str = "AIO_BACKEND";

/// A kernel interface for a context to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// The best one available.
    Auto,
    /// `ppoll(2)`.
    Poll,
}

impl Backend {
    /// The name used in reports and in `AIO_BACKEND`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Auto => "auto",
            Backend::Poll => "poll",
        }
    }

    /// The backends `Auto` tries, best first.
    const PREFERENCE: &'static [Backend] = &[Backend::Poll];

    /// Sets up this backend's monitor on its own, for a context built with
    /// [`ContextBuilder`] or for running the conformance suite on it.
    ///
    /// # Errors
    ///
    /// If the backend is not compiled in or the machine refuses it.
    pub fn open(self) -> io::Result<Box<dyn FdMonitor>> {
        open(self)
    }
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
            "poll" => Ok(Backend::Poll),
            other => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("unknown backend {other:?} (expected auto or poll)"),
            )),
        }
    }
}

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

    /// Creates the context.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if `AIO_BACKEND` is not a known backend name; the
    /// error of a forced backend; the error of the last candidate if every
    /// one failed.
    pub fn build(self) -> io::Result<AioContext> {
        let (monitor, info) = match forced(self.backend, env::var(BACKEND_ENV))? {
            Some((backend, by)) => (open(backend)?, BackendInfo::forced(backend.name(), by)),
            None => select()?,
        };
        let mut builder = ContextBuilder::new(monitor)
            .poll_params(self.params)
            .backend_info(info);
        if let Some(clock) = self.clock {
            builder = builder.clock(clock);
        }
        builder.build()
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

/// Tries the backends best first; records why each refused one was skipped.
fn select() -> io::Result<(Box<dyn FdMonitor>, BackendInfo)> {
    let mut skipped = Vec::new();
    let mut last_error = None;
    for &backend in Backend::PREFERENCE {
        match open(backend) {
            Ok(monitor) => {
                let info = skipped.into_iter().fold(
                    BackendInfo::chosen(backend.name()),
                    |info, (name, reason)| info.with_skipped(name, reason),
                );
                return Ok((monitor, info));
            }
            Err(e) => {
                skipped.push((backend.name(), e.to_string()));
                last_error = Some(e);
            }
        }
    }
    Err(last_error
        .unwrap_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no backend compiled in")))
}

fn open(backend: Backend) -> io::Result<Box<dyn FdMonitor>> {
    match backend {
        Backend::Auto => Ok(select()?.0),
        #[cfg(feature = "poll")]
        Backend::Poll => Ok(Box::new(fdmon_poll::PollMonitor::new())),
        #[cfg(not(feature = "poll"))]
        Backend::Poll => Err(not_compiled(backend)),
    }
}

#[cfg(not(feature = "poll"))]
fn not_compiled(backend: Backend) -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        format!("the {backend} backend is not compiled in (cargo feature)"),
    )
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
