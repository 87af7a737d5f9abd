//! The plan of a new context, decided here and nowhere else: which
//! monitor it starts on (the forced backend, or the best candidate that
//! opens: io_uring, else epoll, else poll, among those compiled in), when it
//! moves to another (auto mode on epoll starts on poll and moves to epoll at
//! [`EPOLL_UPGRADE_AT`] handlers), and what it falls back to if its monitor
//! fails after setup (io_uring: epoll). Each refused candidate is recorded
//! with its cause and logged once per process.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use aio_core::{BackendInfo, ContextBuilder, FdMonitor, Upgrade};

use crate::backend::{
    Backend, CANDIDATES, EPOLL_UPGRADE_AT, describe_refusal, no_backend_compiled_in,
};

/// What a context starts on, what it moves to and when, and what it falls
/// back to.
pub(crate) struct Plan {
    pub(crate) monitor: Box<dyn FdMonitor>,
    pub(crate) info: BackendInfo,
    pub(crate) upgrade: Option<Upgrade>,
    /// The backend to move to if the monitor fails after setup.
    pub(crate) fallback: Option<Backend>,
}

/// Sets up one backend; the real one is `Backend::open`, tests inject
/// refusals.
pub(crate) type Open<'a> = &'a dyn Fn(Backend) -> io::Result<Box<dyn FdMonitor>>;

/// The plan for a context on the backend `forced` names (with who forced
/// it), or on the best one `open` gives.
///
/// # Errors
///
/// A forced backend's error; with none forced, the last candidate's, or
/// `Unsupported` if no backend is compiled in.
pub(crate) fn plan(forced: Option<(Backend, &'static str)>, open: Open<'_>) -> io::Result<Plan> {
    match forced {
        None => best(open),
        Some((Backend::PollThenEpoll, by)) => {
            let epoll = open(Backend::Epoll)?;
            let poll = open(Backend::Poll)?;
            Ok(Plan::poll_then_epoll(poll, epoll, |name| {
                BackendInfo::forced(name, by)
            }))
        }
        Some((backend, by)) => {
            let monitor = open(backend)?;
            let info = BackendInfo::forced(monitor.name(), by);
            Ok(Plan::on(backend, monitor, info))
        }
    }
}

/// The best backend `open` gives, with the reasons the better ones were
/// refused. A backend that is not compiled in is no candidate (a build
/// without it is the program's choice, not a refusal to report); with none
/// compiled in, the error says so and names the features.
fn best(open: Open<'_>) -> io::Result<Plan> {
    let mut skipped = Vec::new();
    let mut last_error = None;
    for backend in CANDIDATES.into_iter().filter(|b| b.is_compiled_in()) {
        match open(backend) {
            Ok(monitor) => {
                let mut plan = auto_start(backend, monitor, open);
                for (name, reason) in skipped {
                    plan.info = plan.info.with_skipped(name, reason);
                }
                return Ok(plan);
            }
            Err(e) => {
                let reason = describe_refusal(&e);
                log_once(backend, &reason);
                skipped.push((backend.name(), reason));
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(no_backend_compiled_in))
}

/// The automatic choice on `backend`, whose `monitor` opened: where epoll is
/// the best, it takes QEMU's mode without a ring (start on poll, move to
/// epoll) if poll can be had too.
fn auto_start(backend: Backend, monitor: Box<dyn FdMonitor>, open: Open<'_>) -> Plan {
    if backend == Backend::Epoll
        && Backend::Poll.is_compiled_in()
        && let Ok(poll) = open(Backend::Poll)
    {
        return Plan::poll_then_epoll(poll, monitor, BackendInfo::chosen);
    }
    let info = BackendInfo::chosen(monitor.name());
    Plan::on(backend, monitor, info)
}

/// What a context on `backend` falls back to if its monitor fails after
/// setup: a ring can (the kernel may stop serving it), and the context then
/// goes on with epoll rather than die. A failing poll or epoll has no
/// better replacement.
fn fallback_after(backend: Backend) -> Option<Backend> {
    (backend == Backend::IoUring && Backend::Epoll.is_compiled_in()).then_some(Backend::Epoll)
}

impl Plan {
    /// A context on `monitor`, of `backend`, for its whole life but for a
    /// fallback.
    fn on(backend: Backend, monitor: Box<dyn FdMonitor>, info: BackendInfo) -> Plan {
        Plan {
            monitor,
            info,
            upgrade: None,
            fallback: fallback_after(backend),
        }
    }

    /// A context on `poll` that moves to `epoll` at [`EPOLL_UPGRADE_AT`]
    /// handlers.
    fn poll_then_epoll(
        poll: Box<dyn FdMonitor>,
        epoll: Box<dyn FdMonitor>,
        info: impl FnOnce(&'static str) -> BackendInfo,
    ) -> Plan {
        let upgrade = Upgrade::new(EPOLL_UPGRADE_AT, epoll.name(), move || Ok(epoll));
        Plan {
            info: info(poll.name()),
            monitor: poll,
            upgrade: Some(upgrade),
            fallback: fallback_after(Backend::PollThenEpoll),
        }
    }

    /// A context builder that carries the plan out.
    pub(crate) fn builder(self) -> ContextBuilder {
        let mut builder = ContextBuilder::new(self.monitor).backend_info(self.info);
        if let Some(upgrade) = self.upgrade {
            builder = builder.upgrade(upgrade);
        }
        if let Some(fallback) = self.fallback {
            builder = builder.fallback(fallback.name(), move || fallback.open());
        }
        builder
    }
}

/// Logs a refused candidate, once per backend per process.
fn log_once(backend: Backend, reason: &str) {
    static LOGGED: [AtomicBool; 3] = [const { AtomicBool::new(false) }; 3];
    let slot = match backend {
        Backend::IoUring => 0,
        Backend::Epoll => 1,
        _ => 2, // poll: the last candidate
    };
    if !LOGGED[slot].swap(true, Ordering::Relaxed) {
        log::warn!("aio: {backend} unavailable, falling back: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sets up backends, except that `refuse` may fail one with an error.
    fn refusing(
        refuse: impl Fn(Backend) -> Option<io::Error>,
    ) -> impl Fn(Backend) -> io::Result<Box<dyn FdMonitor>> {
        move |backend| match refuse(backend) {
            Some(error) => Err(error),
            None => backend.open(),
        }
    }

    fn refused_io_uring(error: fn() -> io::Error, cause: &str) {
        let open = refusing(|b| (b == Backend::IoUring).then(error));
        let plan = plan(None, &open).unwrap();
        assert_eq!(plan.info.name, "poll", "auto mode starts on poll");
        assert_eq!(
            plan.upgrade.as_ref().map(Upgrade::at_handlers),
            Some(EPOLL_UPGRADE_AT)
        );
        assert_eq!(plan.info.skipped.len(), 1);
        assert_eq!(plan.info.skipped[0].name, "io_uring");
        assert!(
            plan.info.skipped[0].reason.contains(cause),
            "{}",
            plan.info.skipped[0].reason
        );
    }

    #[test]
    fn io_uring_without_kernel_support() {
        refused_io_uring(
            || io::Error::from_raw_os_error(libc::ENOSYS),
            "no kernel support",
        );
    }

    #[test]
    fn io_uring_refused_by_seccomp_or_sysctl() {
        refused_io_uring(|| io::Error::from_raw_os_error(libc::EPERM), "seccomp");
    }

    #[test]
    fn io_uring_over_the_memlock_limit() {
        refused_io_uring(
            || io::Error::from_raw_os_error(libc::ENOMEM),
            "RLIMIT_MEMLOCK",
        );
    }

    #[test]
    fn io_uring_missing_an_opcode() {
        refused_io_uring(
            || {
                io::Error::new(
                    io::ErrorKind::Unsupported,
                    "IORING_OP_POLL_ADD is not supported",
                )
            },
            "IORING_OP_POLL_ADD",
        );
    }

    #[test]
    fn without_io_uring_and_epoll_it_is_poll() {
        let open = refusing(|b| match b {
            Backend::IoUring => Some(io::Error::from_raw_os_error(libc::ENOSYS)),
            Backend::Epoll => Some(io::Error::from_raw_os_error(libc::EMFILE)),
            _ => None,
        });
        let plan = plan(None, &open).unwrap();
        assert_eq!(plan.info.name, "poll");
        assert!(plan.upgrade.is_none());
        let names: Vec<_> = plan.info.skipped.iter().map(|s| s.name).collect();
        assert_eq!(names, ["io_uring", "epoll"]);
    }

    #[test]
    fn nothing_works() {
        let open = refusing(|b| match b {
            Backend::Poll => Some(io::Error::from_raw_os_error(libc::EMFILE)),
            _ => Some(io::Error::from_raw_os_error(libc::ENOSYS)),
        });
        let err = plan(None, &open).err().unwrap();
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
    }

    #[test]
    fn io_uring_first_when_it_works() {
        let plan = plan(None, &|b: Backend| b.open()).unwrap();
        assert_eq!(plan.info.name, "io_uring");
        assert!(plan.info.skipped.is_empty());
        assert_eq!(
            plan.fallback,
            Some(Backend::Epoll),
            "a ring falls back to epoll"
        );
    }

    #[test]
    fn only_a_ring_has_a_fallback() {
        for backend in [
            Backend::IoUring,
            Backend::Epoll,
            Backend::Poll,
            Backend::PollThenEpoll,
        ] {
            let plan = plan(Some((backend, "a test")), &|b: Backend| b.open()).unwrap();
            let expected = (backend == Backend::IoUring).then_some(Backend::Epoll);
            assert_eq!(plan.fallback, expected, "{backend}");
            assert_eq!(
                plan.upgrade.is_some(),
                backend == Backend::PollThenEpoll,
                "{backend}: only poll-then-epoll moves"
            );
        }
    }

    #[test]
    fn auto_mode_on_epoll_without_poll_stays_on_epoll() {
        let open = refusing(|b| match b {
            Backend::IoUring => Some(io::Error::from_raw_os_error(libc::ENOSYS)),
            Backend::Poll => Some(io::Error::from_raw_os_error(libc::EMFILE)),
            _ => None,
        });
        let plan = plan(None, &open).unwrap();
        assert_eq!(plan.info.name, "epoll");
        assert!(plan.upgrade.is_none() && plan.fallback.is_none());
    }
}
