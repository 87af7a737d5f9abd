//! What every pair shares, whatever it runs: the [`PingPong`] trait the
//! initiating side implements, [`Timed`], which warms a pair up, times its
//! batches and counts what the timed round trips did, and the partner
//! thread's plumbing ([`ready`], [`Lifeline`], [`Partner`]).
//!
//! Kept apart from the pairs so that each of them (aio, raw epoll, the
//! peers, the spin floor) is only its own two loops.

use std::cell::{Cell, RefCell};
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::WARM_UP;
use crate::measure::{MAX_COUNTERS, Variant};
use crate::sys;

/// The initiating side of a pair: makes round trips on the home thread.
pub(super) trait PingPong {
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
pub(super) struct Timed {
    pub(super) name: String,
    labels: &'static [&'static str],
    pair: RefCell<Box<dyn PingPong>>,
    counters: Cell<[u64; MAX_COUNTERS]>,
}

impl Timed {
    pub(super) fn new(
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
    pub(super) fn batch(&self, n: u64) -> io::Result<Duration> {
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

    pub(super) fn variant(&self) -> Variant<'_> {
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
pub(super) fn ready(rx: &mpsc::Receiver<io::Result<()>>) -> io::Result<()> {
    rx.recv()
        .map_err(|_| io::Error::other("the partner thread died while setting up"))?
}

/// What the initiator and a partner thread share to stop the partner and
/// to see that it died.
#[derive(Debug, Default)]
pub(super) struct Lifeline {
    stop: AtomicBool,
    dead: AtomicBool,
    error: Mutex<Option<String>>,
}

impl Lifeline {
    pub(super) fn check(&self) -> io::Result<()> {
        if self.dead.load(Ordering::Acquire) {
            let error = self.error.lock().map(|e| e.clone()).unwrap_or_default();
            return Err(io::Error::other(format!(
                "the partner thread exited: {}",
                error.unwrap_or_else(|| "stopped".to_owned())
            )));
        }
        Ok(())
    }

    pub(super) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Acquire)
    }

    /// Records how the partner ended, then wakes the initiator.
    pub(super) fn died(&self, result: io::Result<()>, wake: impl FnOnce()) {
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
pub(super) struct Partner {
    pub(super) life: Arc<Lifeline>,
    pub(super) wake: Box<dyn Fn()>,
    pub(super) thread: Option<JoinHandle<()>>,
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
