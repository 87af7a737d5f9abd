//! `loop-iteration`: the cost of one loop iteration that serves one active
//! eventfd among `K` idle ones.
//!
//! One iteration writes the active eventfd, then polls without blocking,
//! and the active fd's read handler drains it. The reference is the same
//! work done by hand: write, `ppoll` with a zero timeout over the same
//! eventfds, scan the `pollfd` array, read the ready one.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::rc::Rc;

use aio::prelude::*;

use crate::measure::{Plan, Variant, interleaved};
use crate::report::Group;
use crate::scenarios::check_done;

/// The numbers of idle handlers measured, `K`.
pub const IDLE_COUNTS: &[usize] = &[1, 64];

/// The name of the reference variant.
pub const REFERENCE: &str = "raw-ppoll";

/// The name of the event loop's variant.
pub const AIO: &str = "aio-poll";

/// Measures one group per entry of `idle_counts`.
///
/// # Errors
///
/// Setting up the fds or the context failed, or an iteration did not run
/// the active handler exactly once.
pub fn run(plan: &Plan, idle_counts: &[usize]) -> io::Result<Vec<Group>> {
    idle_counts
        .iter()
        .map(|&idle| run_one(plan, idle))
        .collect()
}

fn run_one(plan: &Plan, idle: usize) -> io::Result<Group> {
    let mut raw = RawLoop::new(idle)?;
    let aio = AioLoop::new(idle)?;
    let mut variants = [
        Variant::new(REFERENCE, |n| raw.run(n)).expect_no_allocs(),
        Variant::new(AIO, |n| aio.run(n)).expect_no_allocs(),
    ];
    let rows = interleaved(plan, &mut variants)?;
    drop(variants);
    Ok(Group {
        title: format!("loop-iteration: {idle} idle + 1 active eventfd"),
        reference: REFERENCE.to_owned(),
        rows,
        notes: vec![format!(
            "{AIO} also watches the context's own notifier: {} fds to {}",
            idle + 2,
            idle + 1
        )],
    })
}

/// The event loop on the poll monitor with `idle` idle handlers and one
/// active one.
struct AioLoop {
    // Declared first so it drops first: the fds must outlive their handlers.
    ctx: AioContext,
    active: Rc<EventNotifier>,
    _idle: Vec<Rc<EventNotifier>>,
    served: Rc<Cell<u64>>,
}

impl AioLoop {
    fn new(idle: usize) -> io::Result<AioLoop> {
        let ctx = AioContext::builder().backend(Backend::Poll).build()?;
        let backend = ctx.backend();
        if backend.name != "poll" {
            return Err(io::Error::other(format!(
                "asked for the poll monitor, got {}",
                backend.name
            )));
        }
        let mut idle_notifiers = Vec::with_capacity(idle);
        for _ in 0..idle {
            let n = Rc::new(EventNotifier::new()?);
            let drain = Rc::clone(&n);
            ctx.set_fd_handler(
                &*n,
                Some(FdHandler::new().on_read(move |_ctx| {
                    let _ = drain.test_and_clear();
                })),
            )?;
            idle_notifiers.push(n);
        }
        let active = Rc::new(EventNotifier::new()?);
        let served = Rc::new(Cell::new(0));
        let (drain, count) = (Rc::clone(&active), Rc::clone(&served));
        ctx.set_fd_handler(
            &*active,
            Some(FdHandler::new().on_read(move |_ctx| {
                if drain.test_and_clear().unwrap_or(false) {
                    count.set(count.get() + 1);
                }
            })),
        )?;
        Ok(AioLoop {
            ctx,
            active,
            _idle: idle_notifiers,
            served,
        })
    }

    fn run(&self, n: u64) -> io::Result<()> {
        let before = self.served.get();
        for _ in 0..n {
            self.active.set()?;
            self.ctx.poll(false)?;
        }
        check_done(AIO, n, self.served.get() - before)
    }
}

/// The hand-written reference: eventfds and a `pollfd` array, nothing else.
struct RawLoop {
    /// Owns the eventfds; the active one is last.
    _fds: Vec<OwnedFd>,
    pollfds: Vec<libc::pollfd>,
    active: RawFd,
}

impl RawLoop {
    fn new(idle: usize) -> io::Result<RawLoop> {
        let fds = (0..=idle)
            .map(|_| eventfd())
            .collect::<io::Result<Vec<OwnedFd>>>()?;
        let pollfds = fds
            .iter()
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLPRI,
                revents: 0,
            })
            .collect();
        let active = fds.last().map_or(-1, AsRawFd::as_raw_fd);
        Ok(RawLoop {
            _fds: fds,
            pollfds,
            active,
        })
    }

    fn run(&mut self, n: u64) -> io::Result<()> {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut served = 0;
        for _ in 0..n {
            write_one(self.active)?;
            // SAFETY: `pollfds` is a live, exclusively borrowed array of
            // `pollfds.len()` pollfd structs that the kernel writes revents
            // into; `zero` outlives the call; a null signal mask leaves the
            // mask unchanged.
            let ready = unsafe {
                libc::ppoll(
                    self.pollfds.as_mut_ptr(),
                    self.pollfds.len() as libc::nfds_t,
                    &zero,
                    std::ptr::null(),
                )
            };
            if ready < 0 {
                return Err(io::Error::last_os_error());
            }
            for pfd in &self.pollfds {
                if pfd.revents & (libc::POLLIN | libc::POLLPRI) != 0 && read_one(pfd.fd)? {
                    served += 1;
                }
            }
        }
        check_done(REFERENCE, n, served)
    }
}

/// A non-blocking, close-on-exec eventfd.
fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; it returns a new fd or -1.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by eventfd, is open, and nothing else
    // owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds one to an eventfd's counter.
fn write_one(fd: RawFd) -> io::Result<()> {
    let one = 1u64.to_ne_bytes();
    // SAFETY: `one` is a live 8-byte buffer for the duration of the call;
    // `fd` is an eventfd owned by the caller's `RawLoop`.
    let n = unsafe { libc::write(fd, one.as_ptr().cast(), one.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Drains an eventfd; returns whether it was set.
fn read_one(fd: RawFd) -> io::Result<bool> {
    let mut buf = [0u8; 8];
    // SAFETY: `buf` is a live, exclusively borrowed 8-byte buffer for the
    // duration of the call; `fd` is an eventfd owned by the caller's
    // `RawLoop`.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        let err = io::Error::last_os_error();
        return match err.kind() {
            io::ErrorKind::WouldBlock => Ok(false),
            _ => Err(err),
        };
    }
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_loops_serve_the_active_fd_once_per_iteration() {
        let mut raw = RawLoop::new(3).unwrap();
        raw.run(50).unwrap();
        let aio = AioLoop::new(3).unwrap();
        aio.run(50).unwrap();
        assert_eq!(aio.served.get(), 50);
    }
}
