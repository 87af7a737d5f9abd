//! The automatic choice: io_uring, else epoll in auto mode (start on poll,
//! move to epoll at [`EPOLL_UPGRADE_AT`] handlers), else poll, among the
//! backends compiled in; each refused candidate is recorded with its cause
//! and logged once per process.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

use aio_core::{BackendInfo, FdMonitor, Upgrade};

use crate::backend::{
    Backend, CANDIDATES, EPOLL_UPGRADE_AT, describe_refusal, no_backend_compiled_in,
};

/// What a context starts with.
pub(crate) struct Plan {
    pub(crate) monitor: Box<dyn FdMonitor>,
    pub(crate) info: BackendInfo,
    pub(crate) upgrade: Option<Upgrade>,
}

/// Sets up one backend; the real one is `Backend::open`, tests inject
/// refusals.
pub(crate) type Open<'a> = &'a dyn Fn(Backend) -> io::Result<Box<dyn FdMonitor>>;

/// The best backend `open` gives, with the reasons the better ones were
/// refused. A backend that is not compiled in is no candidate (a build
/// without it is the program's choice, not a refusal to report); with none
/// compiled in, the error says so and names the features.
pub(crate) fn select(open: Open<'_>) -> io::Result<Plan> {
    let mut skipped = Vec::new();
    let mut last_error = None;
    for backend in CANDIDATES.into_iter().filter(|b| b.is_compiled_in()) {
        match open(backend) {
            Ok(monitor) => {
                let mut plan = start(backend, monitor, open);
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

/// A context on `monitor`; where epoll is the best, the automatic choice
/// takes the poll-then-epoll mode if poll can be had too.
fn start(backend: Backend, monitor: Box<dyn FdMonitor>, open: Open<'_>) -> Plan {
    if backend == Backend::Epoll
        && Backend::Poll.is_compiled_in()
        && let Ok(poll) = open(Backend::Poll)
    {
        return poll_then(poll, monitor, BackendInfo::chosen);
    }
    Plan {
        info: BackendInfo::chosen(monitor.name()),
        monitor,
        upgrade: None,
    }
}

/// The poll-then-epoll mode forced by `by`: both monitors must open.
pub(crate) fn poll_then_epoll(open: Open<'_>, by: &'static str) -> io::Result<Plan> {
    let epoll = open(Backend::Epoll)?;
    let poll = open(Backend::Poll)?;
    Ok(poll_then(poll, epoll, |name| BackendInfo::forced(name, by)))
}

/// A context on `poll` that moves to `epoll` at [`EPOLL_UPGRADE_AT`]
/// handlers.
fn poll_then(
    poll: Box<dyn FdMonitor>,
    epoll: Box<dyn FdMonitor>,
    info: impl FnOnce(&'static str) -> BackendInfo,
) -> Plan {
    let upgrade = Upgrade::new(EPOLL_UPGRADE_AT, epoll.name(), move || Ok(epoll));
    Plan {
        info: info(poll.name()),
        monitor: poll,
        upgrade: Some(upgrade),
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
        let plan = select(&open).unwrap();
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
        let plan = select(&open).unwrap();
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
        let err = select(&open).err().unwrap();
        assert_eq!(err.raw_os_error(), Some(libc::EMFILE));
    }

    #[test]
    fn io_uring_first_when_it_works() {
        let plan = select(&|b: Backend| b.open()).unwrap();
        assert_eq!(plan.info.name, "io_uring");
        assert!(plan.info.skipped.is_empty());
    }
}
