//! The remote form: another thread pauses [`PAUSE`], schedules work for
//! the home thread, asleep in its blocking wait, and spins until it has
//! run; the figure is that round trip. aio schedules a `RemoteBh`; the
//! references are `raw-eventfd` (a blocking `read` on an eventfd) and
//! tokio (`Notify::notify_one` to a task on a current-thread runtime).
//!
//! Separate from the local forms: it has its own thread, its own timing
//! (the other thread times each round trip) and its own kind of home side
//! ([`Home`]) for each reference.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aio::prelude::*;

use super::{PAUSE, RAW, TOKIO};
use crate::env::{Cpus, Env, Monitor};
use crate::measure::{MAX_COUNTERS, Variant};
use crate::peers::tokio_runtime;
use crate::sys;

/// How long scheduled work may go unrun before the benchmark gives up.
const STALL: Duration = Duration::from_secs(10);

/// What the home thread and the other thread of a remote variant share.
#[derive(Debug, Default)]
pub(super) struct Trips {
    /// Round trips asked for so far; raised by the home thread.
    target: AtomicU64,
    /// Round trips whose work has run; raised on the home thread.
    pub(super) done: AtomicU64,
    /// Round trips timed so far; raised by the other thread after it has
    /// added to `trip_ns`.
    timed: AtomicU64,
    /// The sum of the round trips' durations, in nanoseconds.
    trip_ns: AtomicU64,
    /// Tells the other thread to exit.
    stop: AtomicBool,
    /// Set by the other thread if it could not send work.
    failed: AtomicBool,
}

/// How the home side of a remote variant waits for work.
trait Home {
    /// Serves work until `done` reaches `target`.
    fn serve(&mut self, trips: &Trips, target: u64) -> io::Result<()>;
    /// Doorbell writes so far, if the variant knows them.
    fn doorbells(&self) -> u64 {
        0
    }
}

struct AioHome {
    // Declared first so it drops before its context.
    _bh: BottomHalf,
    ctx: AioContext,
}

impl Home for AioHome {
    fn serve(&mut self, trips: &Trips, target: u64) -> io::Result<()> {
        while trips.done.load(Ordering::Acquire) < target {
            if trips.failed.load(Ordering::Acquire) {
                return Err(io::Error::other("the other thread could not schedule"));
            }
            self.ctx.poll(true)?;
        }
        Ok(())
    }

    fn doorbells(&self) -> u64 {
        self.ctx.stats().doorbell_rings
    }
}

struct RawHome {
    fd: Arc<OwnedFd>,
}

impl Home for RawHome {
    fn serve(&mut self, trips: &Trips, target: u64) -> io::Result<()> {
        while trips.done.load(Ordering::Acquire) < target {
            let mut buf = [0u8; 8];
            // SAFETY: `buf` is a live, exclusively borrowed 8-byte buffer
            // for the duration of the call; the eventfd is open (held by
            // `self.fd`).
            let n = unsafe { libc::read(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), 8) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
                continue;
            }
            trips.done.fetch_add(1, Ordering::AcqRel);
        }
        Ok(())
    }
}

struct TokioHome {
    rt: tokio::runtime::Runtime,
    notify: Arc<tokio::sync::Notify>,
}

impl Home for TokioHome {
    fn serve(&mut self, trips: &Trips, target: u64) -> io::Result<()> {
        let notify = &self.notify;
        self.rt.block_on(async {
            while trips.done.load(Ordering::Acquire) < target {
                notify.notified().await;
                trips.done.fetch_add(1, Ordering::AcqRel);
            }
        });
        Ok(())
    }
}

/// A remote variant: its home side, and the other thread that sends it
/// work and times the round trips.
pub(super) struct Remote {
    pub(super) name: String,
    home: RefCell<Box<dyn Home>>,
    pub(super) trips: Arc<Trips>,
    other: Option<JoinHandle<()>>,
    counters: Cell<[u64; MAX_COUNTERS]>,
}

impl Remote {
    /// Starts the other thread, which sends work with `send` (false: it
    /// could not).
    fn new(
        cpus: &Cpus,
        name: &str,
        home: Box<dyn Home>,
        trips: Arc<Trips>,
        send: impl Fn() -> bool + Send + 'static,
    ) -> io::Result<Remote> {
        let other = {
            let trips = Arc::clone(&trips);
            let name = name.to_owned();
            cpus.spawn_partner(0, "remote", move || send_work(&name, &trips, &send))?
        };
        Ok(Remote {
            name: name.to_owned(),
            home: RefCell::new(home),
            trips,
            other: Some(other),
            counters: Cell::new([0; MAX_COUNTERS]),
        })
    }

    /// Runs `n` round trips; returns the sum of their durations.
    pub(super) fn run(&self, n: u64) -> io::Result<Duration> {
        let trips = &*self.trips;
        let mut home = self.home.borrow_mut();
        let (sleeps, doorbells) = (sys::voluntary_switches(), home.doorbells());
        let ns_before = trips.trip_ns.load(Ordering::Acquire);
        let target = trips.target.fetch_add(n, Ordering::AcqRel) + n;
        if let Some(other) = &self.other {
            other.thread().unpark();
        }
        home.serve(trips, target)?;
        // The last trip's time lands just after its work has run.
        while trips.timed.load(Ordering::Acquire) < target {
            std::hint::spin_loop();
        }
        let mut c = self.counters.get();
        c[0] += sys::voluntary_switches() - sleeps;
        c[1] += home.doorbells() - doorbells;
        self.counters.set(c);
        let ns = trips.trip_ns.load(Ordering::Acquire) - ns_before;
        Ok(Duration::from_nanos(ns))
    }

    pub(super) fn variant(&self) -> Variant<'_> {
        let labels: &[&str] = if self.name.starts_with("aio") {
            &["home sleeps", "doorbell writes"]
        } else {
            &["home sleeps"]
        };
        let v = Variant::self_timed(self.name.clone(), move |n| self.run(n))
            .counters(labels, move || self.counters.get());
        if self.name.starts_with("aio") {
            v.expect_no_allocs()
        } else {
            v
        }
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.trips.stop.store(true, Ordering::Release);
        if let Some(other) = self.other.take() {
            other.thread().unpark();
            let _ = other.join();
        }
    }
}

/// The other thread: while fewer round trips are done than asked for,
/// pause, then time one: send work and spin until it has run. Else sleep
/// until more are asked for.
fn send_work(name: &str, trips: &Trips, send: &dyn Fn() -> bool) {
    while !trips.stop.load(Ordering::Acquire) {
        let done = trips.done.load(Ordering::Acquire);
        if done >= trips.target.load(Ordering::Acquire) {
            thread::park();
            continue;
        }
        spin_for(PAUSE);
        let start = Instant::now();
        if !send() {
            trips.failed.store(true, Ordering::Release);
            return;
        }
        let mut spins = 0u32;
        while trips.done.load(Ordering::Acquire) == done && !trips.stop.load(Ordering::Acquire) {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) && start.elapsed() > STALL {
                // A hang here would be a lost wake-up: fail loudly rather
                // than wait forever.
                eprintln!(
                    "aio-bench: {name}: work sent {} s ago has not run; the home thread missed its wake-up",
                    STALL.as_secs()
                );
                std::process::exit(3);
            }
            std::hint::spin_loop();
        }
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        trips.trip_ns.fetch_add(ns, Ordering::AcqRel);
        trips.timed.fetch_add(1, Ordering::AcqRel);
    }
}

/// Busy-waits for `d`: a sleep would put this thread's own wake-up into
/// the next round trip.
fn spin_for(d: Duration) {
    let start = Instant::now();
    while start.elapsed() < d {
        std::hint::spin_loop();
    }
}

pub(super) fn remotes(env: &Env<'_>) -> io::Result<Vec<Remote>> {
    let mut remotes = Vec::new();
    {
        let trips = Arc::new(Trips::default());
        let fd = Arc::new(sys::eventfd_with(true)?);
        let raw = fd.as_raw_fd();
        let keep = Arc::clone(&fd);
        remotes.push(Remote::new(
            &env.cpus,
            RAW,
            Box::new(RawHome { fd }),
            trips,
            move || {
                let _ = &keep;
                sys::write_one(raw).is_ok()
            },
        )?);
    }
    for monitor in Monitor::ALL {
        if !env.wants(monitor.variant()) {
            continue;
        }
        let trips = Arc::new(Trips::default());
        let ctx = monitor.context(PollParams::OFF)?;
        let bh = {
            let trips = Arc::clone(&trips);
            ctx.bh(move |_ctx| {
                trips.done.fetch_add(1, Ordering::AcqRel);
            })
        };
        let remote_bh = bh.remote();
        let home = AioHome { _bh: bh, ctx };
        remotes.push(Remote::new(
            &env.cpus,
            monitor.variant(),
            Box::new(home),
            trips,
            move || remote_bh.schedule().is_ok(),
        )?);
    }
    if env.wants(TOKIO) {
        let trips = Arc::new(Trips::default());
        let notify = Arc::new(tokio::sync::Notify::new());
        let home = TokioHome {
            rt: tokio_runtime()?,
            notify: Arc::clone(&notify),
        };
        remotes.push(Remote::new(
            &env.cpus,
            TOKIO,
            Box::new(home),
            trips,
            move || {
                notify.notify_one();
                true
            },
        )?);
    }
    Ok(remotes)
}
