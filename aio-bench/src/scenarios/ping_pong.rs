//! `ping-pong`: two threads, each with its own loop, pinned to distinct
//! CPUs, bounce a message; the figure is the round trip. Four forms:
//!
//! * **(a)** eventfds, polling off: every message is an eventfd write and
//!   the receiver sleeps in the kernel. aio on each monitor, `raw-epoll`
//!   (the reference: `epoll_wait` and `read`/`write` by hand), `mio`,
//!   `polling`, `tokio` (`AsyncFd` on the eventfds), `tokio-notify`
//!   (`Notify` across two runtimes), and the `spin-floor`.
//! * **(b)** a counter in shared memory plus an eventfd, polling on
//!   (`PollParams::IOTHREAD`, 32 768 ns): the receiver's `poll` callback
//!   checks the counter; the sender always writes the eventfd too.
//! * **(c)** the same, but the sender writes the eventfd only when the
//!   receiver has announced that it will block, as virtio devices do:
//!   `poll_begin` clears a "notify me" flag, `poll_end` sets it again, and
//!   the sender reads it after publishing its message (a Dekker pair of
//!   fences with the receiver's last look at the counter).
//! * **(d)** a plain socket pair with no `poll` callback, polling on: the
//!   loop peeks at the monitor while it spins. Each monitor also runs with
//!   polling off (`-blocking`), the blocking round trip it is compared to.
//!
//! The `spin-floor` is two threads bouncing an atomic: the physical limit
//! of a round trip between the two CPUs.
//!
//! Each batch first makes round trips for [`WARM_UP`] untimed, so the other
//! side is awake and the previous variant's threads have gone to sleep
//! (a polling thread spins for up to its window, 256 us at most here);
//! then it times `n` round trips. The counters are the initiating side's,
//! per round trip: `home sleeps` (voluntary context switches: how often it
//! slept), and for aio `blocking waits` and `poll hits` from its
//! `Stats`; in (b) and (c), `eventfd writes` of both sides.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aio::prelude::*;

use crate::env::{Cpus, Env, Monitor};
use crate::measure::{MAX_COUNTERS, Variant};
use crate::peers::{Fd, polling_add, tokio_recv, tokio_runtime, tokio_watch};
use crate::report::{Group, ScenarioReport, Target};
use crate::sys;

/// Untimed round trips at the start of each batch, for at least this long.
pub const WARM_UP: Duration = Duration::from_micros(300);

/// The spin floor's name.
pub const SPIN: &str = "spin-floor";
/// The hand-written epoll loop's name.
pub const RAW_EPOLL: &str = "raw-epoll";

/// The scenario's one-line description.
pub const ABOUT: &str = "two threads, each with its own loop, pinned to distinct CPUs, bounce a \
    message; figure: the round trip";

const HOME_SLEEPS: &str = "home sleeps";
const BLOCKING: &str = "blocking waits";
const HITS: &str = "poll hits";
const WRITES: &str = "eventfd writes";

/// One side of a message link, as seen by the side that receives on it.
#[derive(Clone)]
enum Link {
    /// Each message is an eventfd write.
    Eventfd(Arc<EventNotifier>),
    /// A counter in shared memory, and an eventfd written always or only
    /// when the receiver asked for it.
    Mailbox(Arc<Mailbox>),
    /// One byte on a stream socket pair: `rx` is the receiver's end, `tx`
    /// the sender's.
    Socket { rx: Arc<OwnedFd>, tx: Arc<OwnedFd> },
}

/// A shared-memory message counter with a notifier, in the manner of a
/// virtio queue and its ioeventfd.
#[derive(Debug)]
pub struct Mailbox {
    /// Messages sent so far.
    seq: AtomicU64,
    /// Whether the receiver wants an eventfd write for the next message
    /// (it is about to block, or polling does not suppress them).
    wanted: AtomicBool,
    /// Whether the sender skips the write while `wanted` is clear (form
    /// c).
    suppress: bool,
    notifier: EventNotifier,
    /// Eventfd writes made.
    writes: AtomicU64,
}

impl Mailbox {
    fn new(suppress: bool) -> io::Result<Arc<Mailbox>> {
        Ok(Arc::new(Mailbox {
            seq: AtomicU64::new(0),
            wanted: AtomicBool::new(true),
            suppress,
            notifier: EventNotifier::new()?,
            writes: AtomicU64::new(0),
        }))
    }

    fn send(&self) -> io::Result<()> {
        self.seq.fetch_add(1, Ordering::Release);
        if self.suppress {
            // Pairs with the fence in the receiver's `poll_end`: either it
            // sees the new count in its last look, or this sees `wanted`.
            fence(Ordering::SeqCst);
            if !self.wanted.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.notifier.set()
    }
}

impl Link {
    /// Sends one message to the side that receives on this link.
    fn send(&self) -> io::Result<()> {
        match self {
            Link::Eventfd(n) => n.set(),
            Link::Mailbox(m) => m.send(),
            Link::Socket { tx, .. } => sys::send_byte(tx.as_raw_fd()),
        }
    }

    /// Registers the handler that calls `deliver` once per message received
    /// on this link.
    fn install(&self, ctx: &AioContext, deliver: impl FnMut() + 'static) -> io::Result<()> {
        match self {
            Link::Eventfd(n) => {
                let (n2, mut deliver) = (Arc::clone(n), deliver);
                ctx.set_fd_handler(
                    &**n,
                    Some(FdHandler::new().on_read(move |_| {
                        if n2.test_and_clear().unwrap_or(false) {
                            deliver();
                        }
                    })),
                )
            }
            Link::Socket { rx, .. } => {
                let (raw, mut deliver) = (rx.as_raw_fd(), deliver);
                ctx.set_fd_handler(
                    raw,
                    Some(FdHandler::new().on_read(move |_| {
                        if sys::recv_bytes(raw).unwrap_or(0) > 0 {
                            deliver();
                        }
                    })),
                )
            }
            Link::Mailbox(m) => {
                let seen = Rc::new(Cell::new(0u64));
                let process: Rc<RefCell<dyn FnMut()>> = Rc::new(RefCell::new({
                    let (m, seen, mut deliver) = (Arc::clone(m), Rc::clone(&seen), deliver);
                    move || {
                        let seq = m.seq.load(Ordering::Acquire);
                        if seq != seen.get() {
                            seen.set(seq);
                            deliver();
                        }
                    }
                }));
                let (on_read, on_ready) = (Rc::clone(&process), Rc::clone(&process));
                let (m_read, m_check) = (Arc::clone(m), Arc::clone(m));
                let mut handler = FdHandler::new()
                    .on_read(move |_| {
                        let _ = m_read.notifier.test_and_clear();
                        (on_read.borrow_mut())();
                    })
                    .on_poll(
                        move || m_check.seq.load(Ordering::Acquire) != seen.get(),
                        move |_| (on_ready.borrow_mut())(),
                    );
                if m.suppress {
                    let (begin, end) = (Arc::clone(m), Arc::clone(m));
                    handler = handler
                        .on_poll_begin(move || begin.wanted.store(false, Ordering::Relaxed))
                        .on_poll_end(move || {
                            end.wanted.store(true, Ordering::Relaxed);
                            // Before the loop's last look at the counter.
                            fence(Ordering::SeqCst);
                        });
                }
                ctx.set_fd_handler(&m.notifier, Some(handler))
            }
        }
    }

    /// Eventfd writes made to this link so far.
    fn writes(&self) -> u64 {
        match self {
            Link::Mailbox(m) => m.writes.load(Ordering::Relaxed),
            _ => 0,
        }
    }
}

/// The initiating side of a pair: makes round trips on the home thread.
trait PingPong {
    /// Makes `n` round trips.
    fn round_trips(&mut self, n: u64) -> io::Result<()>;

    /// Cumulative counters of this side beyond sleeps (blocking waits, poll
    /// hits, eventfd writes), in the order of its labels.
    fn counters(&self) -> [u64; 3] {
        [0; 3]
    }

    /// Called after each batch: let the other side rest.
    fn rest(&mut self) {}
}

/// A pair and the counters of its timed round trips.
struct Timed {
    name: String,
    labels: &'static [&'static str],
    pair: RefCell<Box<dyn PingPong>>,
    counters: Cell<[u64; MAX_COUNTERS]>,
}

impl Timed {
    fn new(
        name: impl Into<String>,
        labels: &'static [&'static str],
        pair: Box<dyn PingPong>,
    ) -> Timed {
        Timed {
            name: name.into(),
            labels,
            pair: RefCell::new(pair),
            counters: Cell::new([0; MAX_COUNTERS]),
        }
    }

    /// Warms up, then times `n` round trips; counts what the timed ones did.
    fn batch(&self, n: u64) -> io::Result<Duration> {
        let mut pair = self.pair.borrow_mut();
        let start = Instant::now();
        let mut warm = 0;
        while warm < 2 || start.elapsed() < WARM_UP {
            pair.round_trips(1)?;
            warm += 1;
        }
        let (sleeps, before) = (sys::voluntary_switches(), pair.counters());
        let start = Instant::now();
        pair.round_trips(n)?;
        let elapsed = start.elapsed();
        let (sleeps, after) = (sys::voluntary_switches() - sleeps, pair.counters());
        let mut c = self.counters.get();
        c[0] += sleeps;
        for i in 0..3 {
            c[i + 1] += after[i] - before[i];
        }
        self.counters.set(c);
        pair.rest();
        Ok(elapsed)
    }

    fn variant(&self) -> Variant<'_> {
        let variant = Variant::self_timed(self.name.clone(), move |n| self.batch(n))
            .counters(self.labels, move || self.counters.get());
        if self.name.starts_with("aio") {
            variant.expect_no_allocs()
        } else {
            variant
        }
    }
}

/// Waits for a partner thread to say that it is set up.
fn ready(rx: &mpsc::Receiver<io::Result<()>>) -> io::Result<()> {
    rx.recv()
        .map_err(|_| io::Error::other("the partner thread died while setting up"))?
}

/// What the initiator and a partner thread share to stop the partner and
/// to see that it died.
#[derive(Debug, Default)]
struct Lifeline {
    stop: AtomicBool,
    dead: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Lifeline {
    fn check(&self) -> io::Result<()> {
        if self.dead.load(Ordering::Acquire) {
            let error = self.error.lock().map(|e| e.clone()).unwrap_or_default();
            return Err(io::Error::other(format!(
                "the partner thread exited: {}",
                error.unwrap_or_else(|| "stopped".to_owned())
            )));
        }
        Ok(())
    }

    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Records how the partner ended, then wakes the initiator.
    fn died(&self, result: io::Result<()>, wake: impl FnOnce()) {
        if let Err(e) = result
            && let Ok(mut error) = self.error.lock()
        {
            *error = Some(e.to_string());
        }
        self.dead.store(true, Ordering::Release);
        wake();
    }
}

/// A partner thread and how to stop it.
struct Partner {
    life: Arc<Lifeline>,
    wake: Box<dyn Fn()>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Partner {
    fn drop(&mut self) {
        self.life.stop.store(true, Ordering::Release);
        (self.wake)();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// An aio loop on each side.
struct AioPair {
    ctx: AioContext,
    tx: Link,
    rx: Link,
    got: Rc<Cell<u64>>,
    // Declared after the context: dropped (stopped) after it is.
    partner: Partner,
}

impl AioPair {
    fn new(
        cpus: &Cpus,
        monitor: Monitor,
        params: PollParams,
        links: [Link; 2],
    ) -> io::Result<AioPair> {
        let [to_partner, to_home] = links;
        let life = Arc::new(Lifeline::default());
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread = {
            let (rx, tx, life) = (to_partner.clone(), to_home.clone(), Arc::clone(&life));
            cpus.spawn_partner(0, "pong", move || {
                let result = (|| -> io::Result<()> {
                    let ctx = monitor.context(params)?;
                    let reply = tx.clone();
                    rx.install(&ctx, move || {
                        let _ = reply.send();
                    })?;
                    let _ = ready_tx.send(Ok(()));
                    while !life.stopping() {
                        ctx.poll(true)?;
                    }
                    Ok(())
                })();
                if let Err(e) = &result {
                    let _ = ready_tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                }
                life.died(result, || {
                    let _ = tx.send();
                });
            })?
        };
        let wake = {
            let link = to_partner.clone();
            Box::new(move || {
                let _ = link.send();
            })
        };
        let partner = Partner {
            life,
            wake,
            thread: Some(thread),
        };
        ready(&ready_rx)?;
        let ctx = monitor.context(params)?;
        let got = Rc::new(Cell::new(0));
        let count = Rc::clone(&got);
        to_home.install(&ctx, move || count.set(count.get() + 1))?;
        Ok(AioPair {
            ctx,
            tx: to_partner,
            rx: to_home,
            got,
            partner,
        })
    }
}

impl PingPong for AioPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        for _ in 0..n {
            let before = self.got.get();
            self.tx.send()?;
            while self.got.get() == before {
                self.partner.life.check()?;
                self.ctx.poll(true)?;
            }
        }
        Ok(())
    }

    fn counters(&self) -> [u64; 3] {
        let s = self.ctx.stats();
        [
            s.blocking_waits,
            s.poll_hits,
            self.tx.writes() + self.rx.writes(),
        ]
    }
}

/// Sends and receives on raw fds, for the hand-written pairs.
#[derive(Clone, Copy)]
struct RawWire {
    send: fn(RawFd) -> io::Result<()>,
    recv: fn(RawFd) -> io::Result<bool>,
}

const EVENTFD_WIRE: RawWire = RawWire {
    send: sys::write_one,
    recv: sys::read_one,
};

const SOCKET_WIRE: RawWire = RawWire {
    send: sys::send_byte,
    recv: |fd| sys::recv_bytes(fd).map(|n| n > 0),
};

/// The fds of a raw pair: each side's (receive, send) fds.
struct RawFds {
    home: (RawFd, RawFd),
    partner: (RawFd, RawFd),
    /// Keeps the fds open.
    _owned: Vec<Arc<OwnedFd>>,
}

impl RawFds {
    fn eventfds() -> io::Result<RawFds> {
        let (a, b) = (Arc::new(sys::eventfd()?), Arc::new(sys::eventfd()?));
        Ok(RawFds {
            home: (b.as_raw_fd(), a.as_raw_fd()),
            partner: (a.as_raw_fd(), b.as_raw_fd()),
            _owned: vec![a, b],
        })
    }

    fn sockets() -> io::Result<RawFds> {
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
struct RawEpollPair {
    epoll: sys::Epoll,
    wire: RawWire,
    fds: (RawFd, RawFd),
    partner: Partner,
    _fds: RawFds,
}

impl RawEpollPair {
    fn new(cpus: &Cpus, fds: RawFds, wire: RawWire) -> io::Result<RawEpollPair> {
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

/// mio on each side: `Poll` with the eventfd as a `SourceFd`
/// (edge-triggered, as mio registers everything).
struct MioPair {
    poll: mio::Poll,
    events: mio::Events,
    fds: (RawFd, RawFd),
    partner: Partner,
    _fds: RawFds,
}

impl MioPair {
    fn new(cpus: &Cpus) -> io::Result<MioPair> {
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
struct PollingPair {
    poller: polling::Poller,
    events: polling::Events,
    fds: (RawFd, RawFd),
    partner: Partner,
    _fds: RawFds,
}

impl PollingPair {
    fn new(cpus: &Cpus) -> io::Result<PollingPair> {
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
struct TokioPair {
    // Declared before the runtime: deregistered before it goes.
    afd: tokio::io::unix::AsyncFd<Fd>,
    rt: tokio::runtime::Runtime,
    tx: RawFd,
    partner: Partner,
    _fds: RawFds,
}

impl TokioPair {
    fn new(cpus: &Cpus) -> io::Result<TokioPair> {
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
struct TokioNotifyPair {
    rt: tokio::runtime::Runtime,
    ping: Arc<tokio::sync::Notify>,
    pong: Arc<tokio::sync::Notify>,
    partner: Partner,
}

impl TokioNotifyPair {
    fn new(cpus: &Cpus) -> io::Result<TokioNotifyPair> {
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

/// Two threads bouncing an atomic: odd values are pings, the partner
/// answers by adding one. The partner spins only while a batch runs.
struct SpinPair {
    seq: Arc<AtomicU64>,
    active: Arc<AtomicBool>,
    partner: Partner,
}

impl SpinPair {
    fn new(cpus: &Cpus) -> io::Result<SpinPair> {
        let seq = Arc::new(AtomicU64::new(0));
        let active = Arc::new(AtomicBool::new(false));
        let life = Arc::new(Lifeline::default());
        let thread = {
            let (seq, active, life) = (Arc::clone(&seq), Arc::clone(&active), Arc::clone(&life));
            cpus.spawn_partner(0, "spin", move || {
                while !life.stopping() {
                    if !active.load(Ordering::Acquire) {
                        thread::park();
                        continue;
                    }
                    let v = seq.load(Ordering::Acquire);
                    if v % 2 == 1 {
                        seq.store(v + 1, Ordering::Release);
                    }
                    std::hint::spin_loop();
                }
                life.died(Ok(()), || {});
            })?
        };
        let unpark = thread.thread().clone();
        Ok(SpinPair {
            seq,
            active,
            partner: Partner {
                life,
                wake: Box::new(move || unpark.unpark()),
                thread: Some(thread),
            },
        })
    }
}

impl PingPong for SpinPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        if !self.active.swap(true, Ordering::AcqRel) {
            (self.partner.wake)();
        }
        for _ in 0..n {
            let v = self.seq.load(Ordering::Relaxed);
            self.seq.store(v + 1, Ordering::Release);
            while self.seq.load(Ordering::Acquire) != v + 2 {
                std::hint::spin_loop();
            }
        }
        self.partner.life.check()
    }

    fn rest(&mut self) {
        self.active.store(false, Ordering::Release);
    }
}

/// A form of the scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    A,
    B,
    C,
    D,
}

impl Form {
    const ALL: [Form; 4] = [Form::A, Form::B, Form::C, Form::D];

    fn id(self) -> &'static str {
        match self {
            Form::A => "ping-pong/a",
            Form::B => "ping-pong/b",
            Form::C => "ping-pong/c",
            Form::D => "ping-pong/d",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Form::A => "ping-pong (a): eventfds, polling off",
            Form::B => "ping-pong (b): shared counter + eventfd always written, polling on",
            Form::C => {
                "ping-pong (c): shared counter, eventfd only when the receiver will block, polling on"
            }
            Form::D => {
                "ping-pong (d): socket pair, no poll callback, polling on (and off: -blocking)"
            }
        }
    }

    fn reference(self) -> &'static str {
        match self {
            Form::A | Form::D => RAW_EPOLL,
            Form::B | Form::C => SPIN,
        }
    }

    fn links(self) -> io::Result<[Link; 2]> {
        Ok(match self {
            Form::A => [
                Link::Eventfd(Arc::new(EventNotifier::new()?)),
                Link::Eventfd(Arc::new(EventNotifier::new()?)),
            ],
            Form::B | Form::C => {
                let suppress = self == Form::C;
                [
                    Link::Mailbox(Mailbox::new(suppress)?),
                    Link::Mailbox(Mailbox::new(suppress)?),
                ]
            }
            Form::D => {
                let (a, b) = sys::socketpair()?;
                let (a, b) = (Arc::new(a), Arc::new(b));
                [
                    Link::Socket {
                        rx: Arc::clone(&b),
                        tx: Arc::clone(&a),
                    },
                    Link::Socket { rx: a, tx: b },
                ]
            }
        })
    }
}

const AIO_LABELS: &[&str] = &[HOME_SLEEPS, BLOCKING, HITS];
const MAILBOX_LABELS: &[&str] = &[HOME_SLEEPS, BLOCKING, HITS, WRITES];
const PEER_LABELS: &[&str] = &[HOME_SLEEPS];

/// The name of a (d) variant with polling off.
fn blocking(monitor: Monitor) -> String {
    format!("{}-blocking", monitor.variant())
}

/// Polling with a window of up to 256 us: what form (d) needs on a machine
/// whose blocking round trip is longer than `IOTHREAD`'s 32.8 us.
const WIDE: PollParams = PollParams {
    max_ns: 262_144,
    ..PollParams::IOTHREAD
};

/// The name of a (d) variant with [`WIDE`] polling.
fn wide(monitor: Monitor) -> String {
    format!("{}-max256us", monitor.variant())
}

/// Sets up the pairs of one form that the filter keeps.
fn pairs(env: &Env<'_>, form: Form) -> io::Result<Vec<Timed>> {
    let cpus = &env.cpus;
    let reference = form.reference();
    let wants = |name: &str| name == reference || env.wants(name);
    let mut pairs = Vec::new();
    if form != Form::D && wants(SPIN) {
        pairs.push(Timed::new(
            SPIN,
            PEER_LABELS,
            Box::new(SpinPair::new(cpus)?),
        ));
    }
    if matches!(form, Form::A | Form::D) && wants(RAW_EPOLL) {
        let (fds, wire) = if form == Form::A {
            (RawFds::eventfds()?, EVENTFD_WIRE)
        } else {
            (RawFds::sockets()?, SOCKET_WIRE)
        };
        pairs.push(Timed::new(
            RAW_EPOLL,
            PEER_LABELS,
            Box::new(RawEpollPair::new(cpus, fds, wire)?),
        ));
    }
    let params = if form == Form::A {
        PollParams::OFF
    } else {
        PollParams::IOTHREAD
    };
    let labels = if matches!(form, Form::B | Form::C) {
        MAILBOX_LABELS
    } else {
        AIO_LABELS
    };
    for monitor in Monitor::ALL {
        if wants(monitor.variant()) {
            let pair = AioPair::new(cpus, monitor, params, form.links()?)?;
            pairs.push(Timed::new(monitor.variant(), labels, Box::new(pair)));
        }
    }
    if form == Form::D {
        for monitor in Monitor::ALL {
            if wants(&blocking(monitor)) {
                let pair = AioPair::new(cpus, monitor, PollParams::OFF, form.links()?)?;
                pairs.push(Timed::new(blocking(monitor), labels, Box::new(pair)));
            }
        }
    }
    if form == Form::D {
        for monitor in [Monitor::Epoll, Monitor::IoUring] {
            if wants(&wide(monitor)) {
                let pair = AioPair::new(cpus, monitor, WIDE, form.links()?)?;
                pairs.push(Timed::new(wide(monitor), labels, Box::new(pair)));
            }
        }
    }
    if form == Form::A {
        if wants("mio") {
            pairs.push(Timed::new(
                "mio",
                PEER_LABELS,
                Box::new(MioPair::new(cpus)?),
            ));
        }
        if wants("polling") {
            pairs.push(Timed::new(
                "polling",
                PEER_LABELS,
                Box::new(PollingPair::new(cpus)?),
            ));
        }
        if wants("tokio") {
            pairs.push(Timed::new(
                "tokio",
                PEER_LABELS,
                Box::new(TokioPair::new(cpus)?),
            ));
        }
        if wants("tokio-notify") {
            pairs.push(Timed::new(
                "tokio-notify",
                PEER_LABELS,
                Box::new(TokioNotifyPair::new(cpus)?),
            ));
        }
    }
    Ok(pairs)
}

/// Allocations of form (c) in steady state (both threads counted), under
/// `plan`.
pub(crate) fn steady_state(env: &Env<'_>, plan: &crate::measure::Plan) -> io::Result<Group> {
    let pairs = pairs(env, Form::C)?;
    let mut variants: Vec<Variant<'_>> = pairs.iter().map(Timed::variant).collect();
    let title = "steady state: ping-pong (c), both threads";
    let rows = env.measure_with(plan, title, &mut variants)?;
    drop(variants);
    Ok(Group::new(
        "allocations/ping-pong-c",
        title,
        "round trip",
        SPIN,
        rows,
        Vec::new(),
    ))
}

/// Runs the four forms.
///
/// # Errors
///
/// A pair could not be set up, or a partner thread failed.
pub fn run(env: &Env<'_>) -> io::Result<ScenarioReport> {
    env.progress.scenario("ping-pong", Form::ALL.len());
    let mut report = ScenarioReport {
        name: "ping-pong".to_owned(),
        about: ABOUT.to_owned(),
        ..ScenarioReport::default()
    };
    for form in Form::ALL {
        let pairs = pairs(env, form)?;
        let mut variants: Vec<Variant<'_>> = pairs.iter().map(Timed::variant).collect();
        let rows = env.measure(form.title(), &mut variants)?;
        drop(variants);
        drop(pairs);
        let group = Group::new(
            form.id(),
            form.title(),
            "round trip",
            form.reference(),
            rows,
            notes(form),
        );
        report.targets.extend(targets(form, &group));
        report.groups.push(group);
    }
    Ok(report)
}

fn notes(form: Form) -> Vec<String> {
    let mut notes = vec![format!(
        "counters per round trip, of the initiating thread; {HOME_SLEEPS}: its voluntary context switches"
    )];
    match form {
        Form::A => notes.push(
            "polling uses level mode (no re-arm per event); mio and tokio are edge-triggered".to_owned(),
        ),
        Form::B | Form::C => notes.push(format!(
            "{WRITES}: both directions; polling on = PollParams::IOTHREAD (max 32768 ns, grow x2, reset)"
        )),
        Form::D => {
            notes.push(
                "the handlers have no poll callback: the busy-poll window peeks at the monitor (free on io_uring)"
                    .to_owned(),
            );
            notes.push(
                "a poll time grows only after a wait shorter than max_ns and resets after a longer one: \
                 where a blocking round trip (two wake-ups of an idle CPU) takes longer than 32.8 us, \
                 polling starts only when a wake-up happens to be fast and stops at the first hiccup; \
                 -max256us rows: the same with max_ns = 262144"
                    .to_owned(),
            );
        }
    }
    notes
}

/// Why a polling variant missed its target: it slept, or (when it did
/// not) the loop's own cost per message.
fn why(group: &Group, variant: &str, floor: Option<&str>) -> Option<String> {
    let row = group.row(variant)?;
    let sleeps = row.counter(HOME_SLEEPS)?;
    let hits = row.counter(HITS).unwrap_or(0.0);
    if sleeps >= 0.05 {
        return Some(format!(
            "the initiator still slept in {:.0}% of round trips ({hits:.2} poll hits per round trip)",
            sleeps.min(1.0) * 100.0
        ));
    }
    let floor = group.row(floor?)?;
    Some(format!(
        "no sleeps ({hits:.2} poll hits per round trip): the loop's own cost, {:.0} ns per one-way message above the floor",
        (row.median_ns - floor.median_ns) / 2.0
    ))
}

fn targets(form: Form, group: &Group) -> Vec<Target> {
    let id = form.id();
    let mut targets = Vec::new();
    let floor = group.row(SPIN).map(|_| SPIN);
    let with_note = |t: Target, variant: &str| match (t.verdict, why(group, variant, floor)) {
        (crate::report::Verdict::NotMet, Some(note)) => t.note(note),
        _ => t,
    };
    for monitor in Monitor::ALL {
        let v = monitor.variant();
        if group.row(v).is_none() {
            continue;
        }
        let t = match form {
            Form::A => Target::at_most(
                id,
                v,
                "<= 1.05x raw-epoll",
                group.ratio(v, RAW_EPOLL),
                1.05,
                "x",
            ),
            Form::B => Target::at_most(
                id,
                v,
                "<= 1000 ns",
                group.row(v).map(|r| r.median_ns),
                1000.0,
                "ns",
            ),
            Form::C => {
                Target::at_most(id, v, "<= 1.30x spin-floor", group.ratio(v, SPIN), 1.3, "x")
            }
            Form::D => match monitor {
                Monitor::Epoll | Monitor::IoUring => Target::at_most(
                    id,
                    v,
                    format!("<= 0.12x {}", blocking(monitor)),
                    group.ratio(v, &blocking(monitor)),
                    0.12,
                    "x",
                ),
                _ => continue,
            },
        };
        targets.push(with_note(t, v));
    }
    if form == Form::D && group.row(Monitor::IoUring.variant()).is_some() {
        let v = Monitor::IoUring.variant();
        let t = Target::at_most(
            id,
            v,
            "<= 1.00x aio-epoll",
            group.ratio(v, Monitor::Epoll.variant()),
            1.0,
            "x",
        );
        targets.push(with_note(t, v));
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::env::{Filter, Progress};
    use crate::measure::Plan;

    fn env<'a>(filter: &'a Filter, progress: &'a Progress) -> Env<'a> {
        Env {
            plan: Plan {
                warmup: Duration::ZERO,
                rounds: 2,
                ..Plan::QUICK
            },
            filter,
            cpus: Cpus::NONE,
            progress,
        }
    }

    #[test]
    fn every_pair_makes_round_trips() {
        let (filter, progress) = (Filter::default(), Progress::hidden());
        let env = env(&filter, &progress);
        for form in Form::ALL {
            for timed in pairs(&env, form).unwrap() {
                let elapsed = timed
                    .batch(20)
                    .unwrap_or_else(|e| panic!("{}: {e}", timed.name));
                assert!(elapsed > Duration::ZERO, "{}", timed.name);
            }
        }
    }

    #[test]
    fn suppressed_notifications_still_arrive() {
        // Form (c) on epoll: the sender skips writes while the receiver
        // polls; none may be lost, whatever the timing.
        let (filter, progress) = (Filter::new(&["aio-epoll"]), Progress::hidden());
        let env = env(&filter, &progress);
        for timed in pairs(&env, Form::C).unwrap() {
            timed.batch(2000).unwrap();
        }
    }

    #[test]
    fn the_reference_always_runs() {
        let (filter, progress) = (Filter::new(&["aio-poll"]), Progress::hidden());
        let env = env(&filter, &progress);
        let names: Vec<String> = pairs(&env, Form::A)
            .unwrap()
            .into_iter()
            .map(|t| t.name)
            .collect();
        assert_eq!(names, [RAW_EPOLL, "aio-poll"]);
    }
}
