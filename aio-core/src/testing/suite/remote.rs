//! Cross-thread notification: wake-ups that are not progress, and the
//! suppression of doorbell writes.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use crate::AioContext;
use crate::testing::{Count, Harness, ThreadProbe};

/// `notify()` from another thread, once the loop is blocked, wakes the
/// blocked `poll(true)`, which then returns false: a wake-up alone is not
/// progress.
pub fn notify_wakes_blocking_poll_without_progress(h: &Harness) {
    let f = h.fixture();
    let remote = f.ctx.remote();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let home = ThreadProbe::current();
    let thread = thread::spawn(move || {
        home.wait_until_blocked();
        remote.notify();
    });
    assert!(
        !f.ctx.poll(true).unwrap(),
        "woken by notify only: no progress"
    );
    thread.join().unwrap();
}

/// A notification made before the loop blocks is not lost: the next
/// blocking `poll` returns at once, without a doorbell write.
pub fn notify_before_poll_is_not_lost(h: &Harness) {
    let f = h.fixture();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let before = f.ctx.stats();
    f.ctx.remote().notify();
    assert!(!f.ctx.poll(true).unwrap());
    let after = f.ctx.stats();
    assert_eq!(
        after.doorbell_rings, before.doorbell_rings,
        "nobody was blocked: no doorbell write"
    );
    assert_eq!(
        after.blocking_waits, before.blocking_waits,
        "the loop did not block"
    );
}

/// A burst of notifications costs at most one doorbell write per announced
/// block (here: one).
pub fn notify_burst_costs_one_doorbell_write(h: &Harness) {
    let f = h.fixture();
    let remote = f.ctx.remote();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let before = f.ctx.stats();
    let home = ThreadProbe::current();
    let thread = thread::spawn(move || {
        home.wait_until_blocked();
        for _ in 0..100 {
            remote.notify();
        }
    });
    f.ctx.poll(true).unwrap();
    thread.join().unwrap();
    // Collect the rest of the burst if it came after the wake-up.
    f.ctx.poll(false).unwrap();
    let after = f.ctx.stats();
    let announced = after.announced_blocks - before.announced_blocks;
    let rings = after.doorbell_rings - before.doorbell_rings;
    assert!(
        rings <= announced,
        "{rings} doorbell writes for {announced} announced blocks"
    );
    assert!(rings <= 1, "{rings} doorbell writes for one burst");
}

/// Driven by an outer loop: a remote notification wakes the outer loop
/// sleeping on the context's loop fd (what `prepare` announced).
pub fn notify_wakes_outer_loop(h: &Harness) {
    let f = h.fixture();
    let remote = f.ctx.remote();
    let runs = crate::testing::Count::new();
    let r = runs.clone();
    let bh = f.ctx.bh(move |_| r.hit());
    let remote_bh = bh.remote();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let home = ThreadProbe::current();
    let thread = thread::spawn(move || {
        home.wait_until_blocked();
        remote_bh.schedule().unwrap();
        remote.notify();
    });
    while runs.get() == 0 {
        f.poll(true).unwrap();
    }
    thread.join().unwrap();
    assert_eq!(runs.get(), 1);
}

/// `run` returns when a callback calls `stop`, after that iteration; a stop
/// asked for while the context is not running makes the next `run` return
/// at once, and only that one.
pub fn run_returns_when_a_callback_stops_it(h: &Harness) {
    let f = h.fixture();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let runs = Count::new();
    chain(&f.ctx, &runs, 3);
    f.ctx.run().unwrap();
    assert_eq!(
        runs.get(),
        3,
        "one job per iteration, the third stopped the loop"
    );

    f.ctx.stop();
    let before = f.ctx.stats().iterations;
    f.ctx.run().unwrap();
    assert_eq!(f.ctx.stats().iterations, before, "stopped before it ran");
    chain(&f.ctx, &runs, 4);
    f.ctx.run().unwrap();
    assert_eq!(runs.get(), 4, "the stop was used up");
}

/// Schedules a job that counts in `runs` and schedules the next, for the
/// next iteration, until `runs` reaches `stop_at`, where it stops the loop.
fn chain(ctx: &AioContext, runs: &Count, stop_at: usize) {
    let runs = runs.clone();
    ctx.schedule_oneshot(move |ctx| {
        runs.hit();
        if runs.get() < stop_at {
            chain(ctx, &runs, stop_at);
        } else {
            ctx.stop();
        }
    });
}

/// `Remote::stop` from another thread ends a `run` that is blocked.
pub fn run_returns_when_another_thread_stops_it(h: &Harness) {
    let f = h.fixture();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let (running_tx, running) = mpsc::channel();
    f.ctx
        .schedule_oneshot(move |_| running_tx.send(()).unwrap());
    let remote = f.ctx.remote();
    let stopper = thread::spawn(move || {
        running.recv().unwrap();
        remote.stop();
    });
    f.ctx.run().unwrap();
    stopper.join().unwrap();
}

/// `run_until` checks its condition before each iteration and returns once
/// a callback has made it true.
pub fn run_until_returns_when_the_condition_holds(h: &Harness) {
    let f = h.fixture();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let before = f.ctx.stats().iterations;
    f.ctx.run_until(|| true).unwrap();
    assert_eq!(
        f.ctx.stats().iterations,
        before,
        "true at once: no iteration"
    );
    let runs = Count::new();
    chain(&f.ctx, &runs, usize::MAX);
    f.ctx.run_until(|| runs.get() == 5).unwrap();
    assert_eq!(runs.get(), 5);
}
