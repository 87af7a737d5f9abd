//! How precisely a monitor sleeps, measured on the real clock with bounds
//! generous enough for a loaded machine: a sub-millisecond timeout neither
//! spins nor becomes a millisecond, and a timer fires after one wait, not
//! before its deadline. Functions a backend's tests call with its monitors.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::{AioContext, FdMonitor};

/// How many waits (or timers) each check measures.
pub const TIMING_TRIALS: usize = 20;

/// [`TIMING_TRIALS`] waits of 100 µs on `monitor`, with nothing
/// registered: each lasts at least 100 µs, and the shortest well under a
/// millisecond (rounded up to one, every wait would last one).
///
/// # Panics
///
/// When a wait is short, or none is quick.
pub fn assert_short_waits_are_precise(monitor: &mut dyn FdMonitor) {
    let name = monitor.name();
    let mut events = Vec::new();
    let mut shortest = Duration::MAX;
    for _ in 0..TIMING_TRIALS {
        let start = Instant::now();
        monitor
            .wait(&mut events, Some(Duration::from_micros(100)))
            .unwrap();
        let slept = start.elapsed();
        assert!(events.is_empty(), "{name}: nothing is registered");
        assert!(
            slept >= Duration::from_micros(100),
            "{name}: slept only {slept:?}"
        );
        shortest = shortest.min(slept);
    }
    assert!(
        shortest < Duration::from_micros(800),
        "{name}: the shortest of {TIMING_TRIALS} 100 us waits took {shortest:?}"
    );
}

/// [`TIMING_TRIALS`] timers 200 µs away on a context on `monitor`: each
/// fires in the first `poll(true)`, never before its deadline, after at
/// most one wait (no busy loop), and the quickest well under a
/// millisecond.
///
/// # Panics
///
/// When a timer fires early, late in every trial, or after more than one
/// wait.
pub fn assert_short_timers_fire_after_one_wait(monitor: Box<dyn FdMonitor>) {
    let ctx = AioContext::with_monitor(monitor).expect("a context on the monitor under test");
    let name = ctx.backend().name;
    let fired_at = Rc::new(Cell::new(None));
    let f = Rc::clone(&fired_at);
    let timer = ctx.timer(move |ctx| f.set(Some(ctx.now_ns())));
    let mut quickest = u64::MAX;
    for _ in 0..TIMING_TRIALS {
        fired_at.set(None);
        let before = ctx.stats();
        timer.arm_in(Duration::from_micros(200));
        let deadline = timer.deadline_ns().unwrap();
        assert!(ctx.poll(true).unwrap(), "{name}: the timer ran");
        let after = ctx.stats();
        let fired = fired_at.get().expect("fired in the first poll");
        assert!(fired >= deadline, "{name}: {} ns early", deadline - fired);
        // One wait, or none if the thread lost its CPU past the deadline
        // before the loop computed its timeout: never a loop of waits.
        assert!(after.waits - before.waits <= 1, "{name}: {after:?}");
        assert!(
            after.blocking_waits - before.blocking_waits <= 1,
            "{name}: {after:?}"
        );
        quickest = quickest.min(fired - (deadline - 200_000));
    }
    assert!(
        quickest < 800_000,
        "{name}: the quickest of {TIMING_TRIALS} 200 us timers took {quickest} ns"
    );
}
