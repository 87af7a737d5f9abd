//! The loops measured: aio on a monitor, and the hand-written and peer
//! loops it is compared with (the hand-written io_uring ones are in
//! `raw_uring.rs`). Each serves one active eventfd among the `K` idle ones
//! per iteration, and fails a batch in which it served anything else.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use aio::prelude::*;

use super::{RAW_PPOLL, REFERENCE};
use crate::env::Monitor;
use crate::peers::{Fd, polling_add, tokio_recv, tokio_runtime, tokio_watch};
use crate::scenarios::check_done;
use crate::sys;

/// One variant's loop.
pub(super) trait Iterate {
    /// Runs `n` iterations; fails unless each served the active fd once.
    fn run(&mut self, n: u64) -> io::Result<()>;
}

/// The event loop on a monitor with handlers on the idle fds and one
/// active one.
pub(super) struct AioLoop {
    name: &'static str,
    // Declared first so it drops first: the fds must outlive their handlers.
    pub(super) ctx: AioContext,
    active: Rc<EventNotifier>,
    served: Rc<Cell<u64>>,
    idle_served: Rc<Cell<u64>>,
}

impl AioLoop {
    pub(super) fn new(monitor: Monitor, idle: &[OwnedFd]) -> io::Result<AioLoop> {
        let ctx = monitor.context(PollParams::OFF)?;
        let idle_served = Rc::new(Cell::new(0));
        for fd in idle {
            let count = Rc::clone(&idle_served);
            ctx.set_fd_handler(
                fd,
                Some(FdHandler::new().on_read(move |_ctx| count.set(count.get() + 1))),
            )?;
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
            name: monitor.variant(),
            ctx,
            active,
            served,
            idle_served,
        })
    }
}

impl Iterate for AioLoop {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let before = self.served.get();
        for _ in 0..n {
            self.active.set()?;
            self.ctx.poll(false)?;
        }
        check_done(self.name, n, self.served.get() - before)?;
        check_done(self.name, 0, self.idle_served.get())
    }
}

/// The hand-written ppoll loop: eventfds and a `pollfd` array.
pub(super) struct RawPpoll {
    pollfds: Vec<libc::pollfd>,
    active: OwnedFd,
}

impl RawPpoll {
    pub(super) fn new(idle: &[OwnedFd]) -> io::Result<RawPpoll> {
        let active = sys::eventfd()?;
        let pollfds = idle
            .iter()
            .chain([&active])
            .map(|fd| libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLPRI,
                revents: 0,
            })
            .collect();
        Ok(RawPpoll { pollfds, active })
    }
}

impl Iterate for RawPpoll {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut served = 0;
        for _ in 0..n {
            sys::write_one(self.active.as_raw_fd())?;
            // A null signal mask leaves the mask unchanged.
            // SAFETY: `pollfds` is a live, exclusively borrowed array of
            // `pollfds.len()` pollfds; `zero` outlives the call.
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
                if pfd.revents & (libc::POLLIN | libc::POLLPRI) != 0 && sys::read_one(pfd.fd)? {
                    served += 1;
                }
            }
        }
        check_done(RAW_PPOLL, n, served)
    }
}

/// The reference: a level-triggered epoll set by hand.
pub(super) struct RawEpoll {
    epoll: sys::Epoll,
    active: OwnedFd,
}

impl RawEpoll {
    pub(super) fn new(idle: &[OwnedFd]) -> io::Result<RawEpoll> {
        let epoll = sys::Epoll::new()?;
        let active = sys::eventfd()?;
        for fd in idle.iter().chain([&active]) {
            epoll.add(fd.as_raw_fd(), fd.as_raw_fd() as u64)?;
        }
        Ok(RawEpoll { epoll, active })
    }
}

impl Iterate for RawEpoll {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let mut served = 0;
        for _ in 0..n {
            sys::write_one(self.active.as_raw_fd())?;
            for data in self.epoll.wait(0)? {
                if sys::read_one(data as RawFd)? {
                    served += 1;
                }
            }
        }
        check_done(REFERENCE, n, served)
    }
}

/// mio: `Poll` with every fd as a `SourceFd`, edge-triggered.
pub(super) struct MioLoop {
    poll: mio::Poll,
    events: mio::Events,
    active: OwnedFd,
    active_token: mio::Token,
}

impl MioLoop {
    pub(super) fn new(idle: &[OwnedFd]) -> io::Result<MioLoop> {
        let poll = mio::Poll::new()?;
        for (i, fd) in idle.iter().enumerate() {
            poll.registry().register(
                &mut mio::unix::SourceFd(&fd.as_raw_fd()),
                mio::Token(i),
                mio::Interest::READABLE,
            )?;
        }
        let active = sys::eventfd()?;
        let active_token = mio::Token(idle.len());
        poll.registry().register(
            &mut mio::unix::SourceFd(&active.as_raw_fd()),
            active_token,
            mio::Interest::READABLE,
        )?;
        Ok(MioLoop {
            poll,
            events: mio::Events::with_capacity(64),
            active,
            active_token,
        })
    }
}

impl Iterate for MioLoop {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let mut served = 0;
        let fd = self.active.as_raw_fd();
        for _ in 0..n {
            sys::write_one(fd)?;
            crate::peers::mio_poll(&mut self.poll, &mut self.events, Some(Duration::ZERO))?;
            for event in &self.events {
                if event.token() != self.active_token {
                    return Err(io::Error::other("mio: an idle fd fired"));
                }
                if sys::read_one(fd)? {
                    served += 1;
                }
            }
        }
        check_done("mio", n, served)
    }
}

/// polling: a `Poller` with every fd in level mode.
pub(super) struct PollingLoop {
    poller: polling::Poller,
    events: polling::Events,
    active: OwnedFd,
    active_key: usize,
    watched: Vec<RawFd>,
}

impl PollingLoop {
    pub(super) fn new(idle: &[OwnedFd]) -> io::Result<PollingLoop> {
        let poller = polling::Poller::new()?;
        let active = sys::eventfd()?;
        let mut watched = Vec::new();
        for (key, fd) in idle.iter().chain([&active]).enumerate() {
            polling_add(&poller, fd.as_raw_fd(), key)?;
            watched.push(fd.as_raw_fd());
        }
        Ok(PollingLoop {
            poller,
            events: polling::Events::with_capacity(std::num::NonZeroUsize::MIN.saturating_add(63)),
            active_key: idle.len(),
            active,
            watched,
        })
    }
}

impl Iterate for PollingLoop {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let mut served = 0;
        let fd = self.active.as_raw_fd();
        for _ in 0..n {
            sys::write_one(fd)?;
            self.events.clear();
            self.poller.wait(&mut self.events, Some(Duration::ZERO))?;
            for event in self.events.iter() {
                if event.key != self.active_key {
                    return Err(io::Error::other("polling: an idle fd fired"));
                }
                if sys::read_one(fd)? {
                    served += 1;
                }
            }
        }
        check_done("polling", n, served)
    }
}

impl Drop for PollingLoop {
    fn drop(&mut self) {
        // The poller must forget the fds before they close.
        for &fd in &self.watched {
            // SAFETY: `fd` is still open: the idle fds outlive every loop,
            // and `active` is dropped after this.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let _ = self.poller.delete(fd);
        }
    }
}

/// tokio: an `AsyncFd` per fd on a current-thread runtime; each iteration
/// writes the active fd and awaits its readiness.
pub(super) struct TokioLoop {
    // Declared before the runtime: deregistered before it goes.
    _idle: Vec<tokio::io::unix::AsyncFd<Fd>>,
    active_afd: tokio::io::unix::AsyncFd<Fd>,
    rt: tokio::runtime::Runtime,
    active: OwnedFd,
}

impl TokioLoop {
    pub(super) fn new(idle: &[OwnedFd]) -> io::Result<TokioLoop> {
        let rt = tokio_runtime()?;
        let active = sys::eventfd()?;
        let _guard = rt.enter();
        let idle = idle
            .iter()
            .map(|fd| tokio_watch(fd.as_raw_fd()))
            .collect::<io::Result<Vec<_>>>()?;
        let active_afd = tokio_watch(active.as_raw_fd())?;
        drop(_guard);
        Ok(TokioLoop {
            _idle: idle,
            active_afd,
            rt,
            active,
        })
    }
}

impl Iterate for TokioLoop {
    fn run(&mut self, n: u64) -> io::Result<()> {
        let (afd, fd) = (&self.active_afd, self.active.as_raw_fd());
        self.rt.block_on(async {
            for _ in 0..n {
                sys::write_one(fd)?;
                tokio_recv(afd).await?;
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{idle_eventfds, raw_uring};
    use super::*;
    use crate::env::io_uring_available;

    #[test]
    fn every_loop_serves_the_active_fd_once_per_iteration() {
        let idle = idle_eventfds(3).unwrap();
        let mut loops: Vec<Box<dyn Iterate>> = vec![
            Box::new(RawPpoll::new(&idle).unwrap()),
            Box::new(RawEpoll::new(&idle).unwrap()),
            Box::new(MioLoop::new(&idle).unwrap()),
            Box::new(PollingLoop::new(&idle).unwrap()),
            Box::new(TokioLoop::new(&idle).unwrap()),
        ];
        for monitor in Monitor::ALL {
            loops.push(Box::new(AioLoop::new(monitor, &idle).unwrap()));
        }
        if io_uring_available() {
            for multishot in [true, false] {
                let ring = raw_uring::RawUring::new(&idle, multishot).unwrap();
                loops.push(Box::new(ring));
            }
        }
        for l in &mut loops {
            l.run(50).unwrap();
        }
    }

    #[test]
    fn an_idle_fd_that_fires_fails_the_batch() {
        let idle = idle_eventfds(2).unwrap();
        let mut aio = AioLoop::new(Monitor::Epoll, &idle).unwrap();
        let mut mio = MioLoop::new(&idle).unwrap();
        let mut polling = PollingLoop::new(&idle).unwrap();
        sys::write_one(idle[1].as_raw_fd()).unwrap();
        assert!(aio.run(1).is_err());
        assert!(mio.run(1).is_err());
        assert!(polling.run(1).is_err());
        if io_uring_available() {
            for multishot in [true, false] {
                let mut ring = raw_uring::RawUring::new(&idle, multishot).unwrap();
                assert!(ring.run(1).is_err(), "{}", ring.name());
            }
        }
        let mut raw = RawEpoll::new(&idle).unwrap();
        assert!(raw.run(1).is_err(), "the raw loop serves it as work done");
    }
}
