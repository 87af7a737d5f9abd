//! `bottom-half`: the cost of running a bottom half, three ways.
//!
//! * `oneshot`: `schedule_oneshot` then a non-blocking `poll`, per pair. The
//!   reference: the simplest way to defer work. Its closure is boxed, so it
//!   allocates once per iteration.
//! * `reused`: one [`BottomHalf`], `schedule` then a non-blocking `poll`.
//! * `remote-roundtrip`: another thread waits [`PAUSE`], so that the home
//!   thread is asleep in its blocking `poll`, then schedules a closure with
//!   [`Remote::schedule`] and spins until the closure has run on the home
//!   thread; the time from `schedule` to seeing the closure's effect is the
//!   round trip (the pause is not counted). It is the cost of waking a
//!   sleeping loop with work: the doorbell, the wake-up, the dispatch.
//!
//! The other thread spins rather than sleeps: a sleeping one would add its
//! own wake-up to every round trip. And it pauses because without the
//! pause, whether the home thread is asleep when the next job comes is a
//! race, and the figure swings between the two cases from run to run.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aio::prelude::*;

use crate::measure::{Plan, Variant, interleaved};
use crate::report::Group;
use crate::scenarios::check_done;

/// The name of the reference variant.
pub const ONESHOT: &str = "oneshot";
/// The name of the reused bottom half's variant.
pub const REUSED: &str = "reused";
/// The name of the cross-thread variant.
pub const REMOTE: &str = "remote-roundtrip";

/// Measures the three variants together.
///
/// # Errors
///
/// Setting up a context or the other thread failed, or a batch did not run
/// its callbacks exactly once per iteration.
pub fn run(plan: &Plan) -> io::Result<Group> {
    let oneshot = Oneshot::new()?;
    let reused = Reused::new()?;
    let remote = RemoteRoundTrip::new()?;
    let mut variants = [
        Variant::new(ONESHOT, |n| oneshot.run(n)),
        Variant::new(REUSED, |n| reused.run(n)).expect_no_allocs(),
        Variant::self_timed(REMOTE, |n| remote.run(n)),
    ];
    let rows = interleaved(plan, &mut variants)?;
    drop(variants);
    let blocked = remote.blocked_share();
    Ok(Group {
        title: "bottom-half: schedule + poll(false); remote: round trip, home in poll(true)"
            .to_owned(),
        reference: ONESHOT.to_owned(),
        rows,
        notes: vec![
            format!("{ONESHOT} boxes its closure: one allocation per iteration is expected"),
            format!("{REMOTE} counts both threads; the closure sent is boxed on the other thread"),
            format!(
                "{REMOTE}: the home thread slept in {:.0}% of round trips (warm-up included); \
                 the other thread pauses {} us before each, not counted",
                blocked * 100.0,
                PAUSE.as_micros()
            ),
        ],
    })
}

fn poll_context() -> io::Result<AioContext> {
    AioContext::builder().backend(Backend::Poll).build()
}

/// `schedule_oneshot` then `poll(false)`.
struct Oneshot {
    ctx: AioContext,
    ran: Rc<Cell<u64>>,
}

impl Oneshot {
    fn new() -> io::Result<Oneshot> {
        Ok(Oneshot {
            ctx: poll_context()?,
            ran: Rc::new(Cell::new(0)),
        })
    }

    fn run(&self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        for _ in 0..n {
            let ran = Rc::clone(&self.ran);
            self.ctx
                .schedule_oneshot(move |_ctx| ran.set(ran.get() + 1));
            self.ctx.poll(false)?;
        }
        check_done(ONESHOT, n, self.ran.get() - before)
    }
}

/// One bottom half, scheduled then run by `poll(false)`, again and again.
struct Reused {
    // Declared first so it drops before its context.
    bh: BottomHalf,
    ctx: AioContext,
    ran: Rc<Cell<u64>>,
}

impl Reused {
    fn new() -> io::Result<Reused> {
        let ctx = poll_context()?;
        let ran = Rc::new(Cell::new(0));
        let count = Rc::clone(&ran);
        let bh = ctx.bh(move |_ctx| count.set(count.get() + 1));
        Ok(Reused { bh, ctx, ran })
    }

    fn run(&self, n: u64) -> io::Result<()> {
        let before = self.ran.get();
        for _ in 0..n {
            self.bh.schedule();
            self.ctx.poll(false)?;
        }
        check_done(REUSED, n, self.ran.get() - before)
    }
}

/// How long the pinging thread pauses before each round trip, so that the
/// home thread is asleep in its blocking `poll` when the job arrives; not
/// counted in the round trip.
pub const PAUSE: Duration = Duration::from_micros(20);

/// How long a scheduled job may go unrun before the benchmark gives up.
const STALL: Duration = Duration::from_secs(10);

/// What the home thread and the pinging thread share.
#[derive(Debug, Default)]
struct PingPong {
    /// Round trips asked for so far; raised by the home thread.
    target: AtomicU64,
    /// Round trips whose closure has run; raised by the closures.
    done: AtomicU64,
    /// Round trips timed so far; raised by the pinging thread after it has
    /// added to `trip_ns`.
    timed: AtomicU64,
    /// The sum of the round trips' durations, in nanoseconds.
    trip_ns: AtomicU64,
    /// Tells the pinging thread to exit.
    stop: AtomicBool,
    /// Set by the pinging thread if it could not schedule.
    failed: AtomicBool,
}

/// A second thread that schedules closures on the context one at a time,
/// each after the previous one has run, and times each round trip.
struct RemoteRoundTrip {
    ctx: AioContext,
    shared: Arc<PingPong>,
    pinger: Option<JoinHandle<()>>,
}

impl RemoteRoundTrip {
    fn new() -> io::Result<RemoteRoundTrip> {
        let ctx = poll_context()?;
        let shared = Arc::new(PingPong::default());
        let remote = ctx.remote();
        let pinger = thread::Builder::new()
            .name("aio-bench-pinger".to_owned())
            .spawn({
                let shared = Arc::clone(&shared);
                move || ping(&remote, &shared)
            })?;
        Ok(RemoteRoundTrip {
            ctx,
            shared,
            pinger: Some(pinger),
        })
    }

    /// The share of round trips so far in which the home thread made a
    /// blocking wait.
    fn blocked_share(&self) -> f64 {
        let trips = self.shared.done.load(Ordering::Acquire);
        self.ctx.stats().blocking_waits as f64 / trips.max(1) as f64
    }

    /// Runs `n` round trips; returns the sum of their durations, pauses
    /// left out.
    fn run(&self, n: u64) -> io::Result<Duration> {
        let shared = &*self.shared;
        let before = shared.done.load(Ordering::Acquire);
        let ns_before = shared.trip_ns.load(Ordering::Acquire);
        let target = shared.target.fetch_add(n, Ordering::AcqRel) + n;
        if let Some(pinger) = &self.pinger {
            pinger.thread().unpark();
        }
        while shared.done.load(Ordering::Acquire) < target {
            if shared.failed.load(Ordering::Acquire) {
                return Err(io::Error::other("the pinging thread could not schedule"));
            }
            self.ctx.poll(true)?;
        }
        check_done(REMOTE, n, shared.done.load(Ordering::Acquire) - before)?;
        // The last trip's time lands just after its closure has run.
        while shared.timed.load(Ordering::Acquire) < target {
            std::hint::spin_loop();
        }
        let ns = shared.trip_ns.load(Ordering::Acquire) - ns_before;
        Ok(Duration::from_nanos(ns))
    }
}

impl Drop for RemoteRoundTrip {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(pinger) = self.pinger.take() {
            pinger.thread().unpark();
            let _ = pinger.join();
        }
    }
}

/// The pinging thread: while fewer round trips are done than asked for,
/// pause, then time one: schedule a closure and spin until it has run.
/// Else sleep until more are asked for.
fn ping(remote: &Remote, shared: &Arc<PingPong>) {
    while !shared.stop.load(Ordering::Acquire) {
        let done = shared.done.load(Ordering::Acquire);
        if done >= shared.target.load(Ordering::Acquire) {
            thread::park();
            continue;
        }
        spin_for(PAUSE);
        let pong = Arc::clone(shared);
        let start = Instant::now();
        let scheduled = remote.schedule(move |_ctx| {
            pong.done.fetch_add(1, Ordering::AcqRel);
        });
        if scheduled.is_err() {
            shared.failed.store(true, Ordering::Release);
            remote.notify();
            return;
        }
        let mut spins = 0u32;
        while shared.done.load(Ordering::Acquire) == done && !shared.stop.load(Ordering::Acquire) {
            spins = spins.wrapping_add(1);
            if spins.is_multiple_of(4096) && start.elapsed() > STALL {
                // A hang here would be a lost wake-up in the loop: fail
                // loudly rather than wait forever.
                eprintln!(
                    "aio-bench: {REMOTE}: a job scheduled {} s ago has not run; \
                     the home thread missed its wake-up",
                    STALL.as_secs()
                );
                std::process::exit(3);
            }
            std::hint::spin_loop();
        }
        let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        shared.trip_ns.fetch_add(ns, Ordering::AcqRel);
        shared.timed.fetch_add(1, Ordering::AcqRel);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_runs_its_callbacks() {
        Oneshot::new().unwrap().run(20).unwrap();
        Reused::new().unwrap().run(20).unwrap();
        let remote = RemoteRoundTrip::new().unwrap();
        remote.run(20).unwrap();
        remote.run(5).unwrap();
        assert_eq!(remote.shared.done.load(Ordering::Acquire), 25);
    }
}
