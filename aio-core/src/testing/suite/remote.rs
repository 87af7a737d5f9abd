//! Cross-thread notification: wake-ups that are not progress, and the
//! suppression of doorbell writes.

use std::thread;
use std::time::Duration;

use crate::testing::Harness;

/// `notify()` from another thread wakes a blocked `poll(true)`, which then
/// returns false: a wake-up alone is not progress.
pub fn notify_wakes_blocking_poll_without_progress(h: &Harness) {
    let f = h.fixture();
    let remote = f.ctx.remote();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let thread = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
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
    let thread = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
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
    let thread = thread::spawn(move || {
        thread::sleep(Duration::from_millis(20));
        remote_bh.schedule().unwrap();
        remote.notify();
    });
    while runs.get() == 0 {
        f.poll(true).unwrap();
    }
    thread.join().unwrap();
    assert_eq!(runs.get(), 1);
}
