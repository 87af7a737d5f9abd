//! `raw-epoll`, the reference of forms (a) and (d): `epoll_wait` and
//! `read`/`write` by hand on each side, over eventfds or a socket pair
//! ([`RawWire`]). Also the raw fds ([`RawFds`]) that the peers' pairs
//! share with it.
//!
//! Separate from the peers because it is the yardstick they and aio are
//! held to, and it runs in two forms where they run in one.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::{Arc, mpsc};

use super::harness::{Lifeline, Partner, PingPong, ready};
use crate::env::Cpus;
use crate::sys;

/// Sends and receives on raw fds, for the hand-written pairs.
#[derive(Clone, Copy)]
pub(super) struct RawWire {
    send: fn(RawFd) -> io::Result<()>,
    recv: fn(RawFd) -> io::Result<bool>,
}

pub(super) const EVENTFD_WIRE: RawWire = RawWire {
    send: sys::write_one,
    recv: sys::read_one,
};

pub(super) const SOCKET_WIRE: RawWire = RawWire {
    send: sys::send_byte,
    recv: |fd| sys::recv_bytes(fd).map(|n| n > 0),
};

/// The fds of a raw pair: each side's (receive, send) fds.
pub(super) struct RawFds {
    pub(super) home: (RawFd, RawFd),
    pub(super) partner: (RawFd, RawFd),
    /// Keeps the fds open.
    _owned: Vec<Arc<OwnedFd>>,
}

impl RawFds {
    pub(super) fn eventfds() -> io::Result<RawFds> {
        let (a, b) = (Arc::new(sys::eventfd()?), Arc::new(sys::eventfd()?));
        Ok(RawFds {
            home: (b.as_raw_fd(), a.as_raw_fd()),
            partner: (a.as_raw_fd(), b.as_raw_fd()),
            _owned: vec![a, b],
        })
    }

    pub(super) fn sockets() -> io::Result<RawFds> {
        let (a, b) = sys::socketpair()?;
        let (a, b) = (Arc::new(a), Arc::new(b));
        Ok(RawFds {
            home: (a.as_raw_fd(), a.as_raw_fd()),
            partner: (b.as_raw_fd(), b.as_raw_fd()),
            _owned: vec![a, b],
        })
    }
}

/// `epoll_wait` and `read`/`write` by hand on each side.
pub(super) struct RawEpollPair {
    epoll: sys::Epoll,
    wire: RawWire,
    fds: (RawFd, RawFd),
    partner: Partner,
    _fds: RawFds,
}

impl RawEpollPair {
    pub(super) fn new(cpus: &Cpus, fds: RawFds, wire: RawWire) -> io::Result<RawEpollPair> {
        let life = Arc::new(Lifeline::default());
        let (rx, tx) = fds.partner;
        let home_rx = fds.home.0;
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let life = Arc::clone(&life);
            cpus.spawn_partner(0, "pong", move || {
                let result = (|| {
                    let mut epoll = sys::Epoll::new()?;
                    epoll.add(rx, 0)?;
                    let _ = ready_tx.send(Ok(()));
                    while !life.stopping() {
                        let ready = epoll.wait(-1)?.count();
                        if ready > 0 && (wire.recv)(rx)? && !life.stopping() {
                            (wire.send)(tx)?;
                        }
                    }
                    Ok(())
                })();
                life.died(result, || {
                    let _ = (wire.send)(tx);
                });
            })?
        };
        let wake_fd = fds.home.1;
        let partner = Partner {
            life,
            wake: Box::new(move || {
                let _ = (wire.send)(wake_fd);
            }),
            thread: Some(thread),
        };
        ready(&ready_rx)?;
        let epoll = sys::Epoll::new()?;
        epoll.add(home_rx, 0)?;
        Ok(RawEpollPair {
            epoll,
            wire,
            fds: fds.home,
            partner,
            _fds: fds,
        })
    }
}

impl PingPong for RawEpollPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        let (rx, tx) = self.fds;
        for _ in 0..n {
            (self.wire.send)(tx)?;
            loop {
                self.partner.life.check()?;
                let ready = self.epoll.wait(-1)?.count();
                if ready > 0 && (self.wire.recv)(rx)? {
                    break;
                }
            }
        }
        Ok(())
    }
}
