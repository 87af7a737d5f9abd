//! Helpers for the peers the loop is measured against: tokio (a
//! current-thread runtime, `AsyncFd` over a borrowed fd) and polling (level
//! mode).

use std::io;
use std::os::fd::{AsRawFd, RawFd};

use crate::env::Cpus;
use crate::sys;

/// Adds `fd` to `poller` in level mode with key `key`.
pub fn polling_add(poller: &polling::Poller, fd: RawFd, key: usize) -> io::Result<()> {
    // SAFETY: the callers keep `fd` open until they delete it from the
    // poller or drop the poller, whichever comes first.
    unsafe { poller.add_with_mode(fd, polling::Event::readable(key), polling::PollMode::Level) }
}

/// An fd that tokio's `AsyncFd` may watch without owning it.
#[derive(Clone, Copy, Debug)]
pub struct Fd(pub RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Watches `fd` for reading with tokio's reactor; must be called within a
/// runtime.
pub fn tokio_watch(fd: RawFd) -> io::Result<tokio::io::unix::AsyncFd<Fd>> {
    // SAFETY: every caller keeps `fd` open, and does not replace it, until
    // the returned `AsyncFd` is dropped (its owner outlives it).
    let registered = unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(Fd(fd), tokio::io::Interest::READABLE)
    };
    Ok(registered?)
}

/// A current-thread tokio runtime with I/O and timers.
pub fn tokio_runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
}

/// [`tokio_runtime`] whose blocking pool's threads run on the partner
/// CPUs, as aio's pool workers do in the same scenario.
pub fn tokio_blocking_runtime(cpus: &Cpus) -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .on_thread_start(cpus.partner_hook())
        .build()
}

/// Waits until the eventfd behind `afd` is set, and drains it.
pub async fn tokio_recv(afd: &tokio::io::unix::AsyncFd<Fd>) -> io::Result<()> {
    loop {
        let mut guard = afd.readable().await?;
        let got = sys::read_one(afd.get_ref().0)?;
        guard.clear_ready();
        if got {
            return Ok(());
        }
    }
}

/// `Poll::poll`, again after a signal (mio returns `EINTR` to its caller).
pub fn mio_poll(
    poll: &mut mio::Poll,
    events: &mut mio::Events,
    timeout: Option<std::time::Duration>,
) -> io::Result<()> {
    loop {
        match poll.poll(events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}
