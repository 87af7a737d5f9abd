//! The peers a user would pick instead of aio, in form (a) only (polling
//! off, eventfds): `mio`, `polling`, `tokio` (`AsyncFd` on the eventfds)
//! and `tokio-notify` (`Notify` across two runtimes). Each pair runs the
//! same loop on both threads.
//!
//! Separate because they are comparisons, not forms: none of them takes
//! part in (b), (c) or (d).

use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, mpsc};

use super::harness::{Lifeline, Partner, PingPong, ready};
use super::raw_epoll::RawFds;
use crate::env::Cpus;
use crate::peers::{Fd, polling_add, tokio_recv, tokio_runtime, tokio_watch};
use crate::sys;

/// mio on each side: `Poll` with the eventfd as a `SourceFd`
/// (edge-triggered, as mio registers everything).
pub(super) struct MioPair {
    poll: mio::Poll,
    events: mio::Events,
    fds: (RawFd, RawFd),
    partner: Partner,
    _fds: RawFds,
}

impl MioPair {
    pub(super) fn new(cpus: &Cpus) -> io::Result<MioPair> {
        let fds = RawFds::eventfds()?;
        let life = Arc::new(Lifeline::default());
        let (rx, tx) = fds.partner;
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let life = Arc::clone(&life);
            cpus.spawn_partner(0, "pong", move || {
                let result = (|| {
                    let mut poll = mio::Poll::new()?;
                    let mut events = mio::Events::with_capacity(8);
                    poll.registry().register(
                        &mut mio::unix::SourceFd(&rx),
                        mio::Token(0),
                        mio::Interest::READABLE,
                    )?;
                    let _ = ready_tx.send(Ok(()));
                    while !life.stopping() {
                        crate::peers::mio_poll(&mut poll, &mut events, None)?;
                        if !events.is_empty() && sys::read_one(rx)? && !life.stopping() {
                            sys::write_one(tx)?;
                        }
                    }
                    Ok(())
                })();
                life.died(result, || {
                    let _ = sys::write_one(tx);
                });
            })?
        };
        let wake_fd = fds.home.1;
        let partner = Partner {
            life,
            wake: Box::new(move || {
                let _ = sys::write_one(wake_fd);
            }),
            thread: Some(thread),
        };
        ready(&ready_rx)?;
        let poll = mio::Poll::new()?;
        poll.registry().register(
            &mut mio::unix::SourceFd(&fds.home.0),
            mio::Token(0),
            mio::Interest::READABLE,
        )?;
        Ok(MioPair {
            poll,
            events: mio::Events::with_capacity(8),
            fds: fds.home,
            partner,
            _fds: fds,
        })
    }
}

impl PingPong for MioPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        let (rx, tx) = self.fds;
        for _ in 0..n {
            sys::write_one(tx)?;
            loop {
                self.partner.life.check()?;
                crate::peers::mio_poll(&mut self.poll, &mut self.events, None)?;
                if !self.events.is_empty() && sys::read_one(rx)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// polling on each side: a `Poller` with the eventfd in level mode (no
/// re-arming `modify` per event).
pub(super) struct PollingPair {
    poller: polling::Poller,
    events: polling::Events,
    fds: (RawFd, RawFd),
    partner: Partner,
    _fds: RawFds,
}

impl PollingPair {
    pub(super) fn new(cpus: &Cpus) -> io::Result<PollingPair> {
        let fds = RawFds::eventfds()?;
        let life = Arc::new(Lifeline::default());
        let (rx, tx) = fds.partner;
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let life = Arc::clone(&life);
            cpus.spawn_partner(0, "pong", move || {
                let result = (|| {
                    let poller = polling::Poller::new()?;
                    let mut events = polling::Events::new();
                    polling_add(&poller, rx, 0)?;
                    let _ = ready_tx.send(Ok(()));
                    while !life.stopping() {
                        events.clear();
                        poller.wait(&mut events, None)?;
                        if !events.is_empty() && sys::read_one(rx)? && !life.stopping() {
                            sys::write_one(tx)?;
                        }
                    }
                    Ok(())
                })();
                life.died(result, || {
                    let _ = sys::write_one(tx);
                });
            })?
        };
        let wake_fd = fds.home.1;
        let partner = Partner {
            life,
            wake: Box::new(move || {
                let _ = sys::write_one(wake_fd);
            }),
            thread: Some(thread),
        };
        ready(&ready_rx)?;
        let poller = polling::Poller::new()?;
        polling_add(&poller, fds.home.0, 0)?;
        Ok(PollingPair {
            poller,
            events: polling::Events::new(),
            fds: fds.home,
            partner,
            _fds: fds,
        })
    }
}

impl PingPong for PollingPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        let (rx, tx) = self.fds;
        for _ in 0..n {
            sys::write_one(tx)?;
            loop {
                self.partner.life.check()?;
                self.events.clear();
                self.poller.wait(&mut self.events, None)?;
                if !self.events.is_empty() && sys::read_one(rx)? {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// tokio on each side: a current-thread runtime, the eventfd in an
/// `AsyncFd`.
pub(super) struct TokioPair {
    // Declared before the runtime: deregistered before it goes.
    afd: tokio::io::unix::AsyncFd<Fd>,
    rt: tokio::runtime::Runtime,
    tx: RawFd,
    partner: Partner,
    _fds: RawFds,
}

impl TokioPair {
    pub(super) fn new(cpus: &Cpus) -> io::Result<TokioPair> {
        let fds = RawFds::eventfds()?;
        let life = Arc::new(Lifeline::default());
        let (rx, tx) = fds.partner;
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let life = Arc::clone(&life);
            cpus.spawn_partner(0, "pong", move || {
                let result = (|| {
                    let rt = tokio_runtime()?;
                    rt.block_on(async {
                        let afd = tokio_watch(rx)?;
                        let _ = ready_tx.send(Ok(()));
                        while !life.stopping() {
                            tokio_recv(&afd).await?;
                            if !life.stopping() {
                                sys::write_one(tx)?;
                            }
                        }
                        Ok(())
                    })
                })();
                life.died(result, || {
                    let _ = sys::write_one(tx);
                });
            })?
        };
        let wake_fd = fds.home.1;
        let partner = Partner {
            life,
            wake: Box::new(move || {
                let _ = sys::write_one(wake_fd);
            }),
            thread: Some(thread),
        };
        ready(&ready_rx)?;
        let rt = tokio_runtime()?;
        let afd = {
            let _guard = rt.enter();
            tokio_watch(fds.home.0)?
        };
        Ok(TokioPair {
            afd,
            rt,
            tx: fds.home.1,
            partner,
            _fds: fds,
        })
    }
}

impl PingPong for TokioPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        let (afd, tx, life) = (&self.afd, self.tx, &self.partner.life);
        self.rt.block_on(async {
            for _ in 0..n {
                life.check()?;
                sys::write_one(tx)?;
                tokio_recv(afd).await?;
            }
            Ok(())
        })
    }
}

/// tokio on each side, messages as `Notify::notify_one` across runtimes.
pub(super) struct TokioNotifyPair {
    rt: tokio::runtime::Runtime,
    ping: Arc<tokio::sync::Notify>,
    pong: Arc<tokio::sync::Notify>,
    partner: Partner,
}

impl TokioNotifyPair {
    pub(super) fn new(cpus: &Cpus) -> io::Result<TokioNotifyPair> {
        let ping = Arc::new(tokio::sync::Notify::new());
        let pong = Arc::new(tokio::sync::Notify::new());
        let life = Arc::new(Lifeline::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let (ping, pong, life) = (Arc::clone(&ping), Arc::clone(&pong), Arc::clone(&life));
            cpus.spawn_partner(0, "pong", move || {
                let result = (|| {
                    let rt = tokio_runtime()?;
                    let _ = ready_tx.send(Ok(()));
                    rt.block_on(async {
                        while !life.stopping() {
                            ping.notified().await;
                            if !life.stopping() {
                                pong.notify_one();
                            }
                        }
                    });
                    Ok(())
                })();
                life.died(result, || pong.notify_one());
            })?
        };
        let wake = {
            let ping = Arc::clone(&ping);
            Box::new(move || ping.notify_one())
        };
        let partner = Partner {
            life,
            wake,
            thread: Some(thread),
        };
        ready(&ready_rx)?;
        Ok(TokioNotifyPair {
            rt: tokio_runtime()?,
            ping,
            pong,
            partner,
        })
    }
}

impl PingPong for TokioNotifyPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        let (ping, pong, life) = (&self.ping, &self.pong, &self.partner.life);
        self.rt.block_on(async {
            for _ in 0..n {
                life.check()?;
                ping.notify_one();
                pong.notified().await;
            }
            Ok(())
        })
    }
}
