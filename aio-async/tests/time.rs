//! Timers on the context's nanosecond clock.

use std::time::{Duration, Instant};

use aio::prelude::*;
use aio_async::Runtime;
use aio_async::time::{Elapsed, interval, sleep, sleep_until, sleep_until_ns, timeout};
use aio_core::ManualClock;
use aio_core::testing::Watchdog;

fn manual_runtime() -> (Runtime, ManualClock) {
    let clock = ManualClock::new();
    let ctx = AioContext::builder().clock(clock.clone()).build().unwrap();
    (Runtime::new(ctx), clock)
}

#[test]
fn sleep_wakes_at_its_deadline_to_the_nanosecond() {
    let (rt, clock) = manual_runtime();
    clock.auto_advance(Duration::from_nanos(1));
    let _dog = Watchdog::arm("a 1500 ns sleep", Duration::from_secs(30));
    let start = rt.context().now_ns();
    rt.block_on(sleep(Duration::from_nanos(1500))).unwrap();
    let waited = rt.context().now_ns() - start;
    assert!((1500..1600).contains(&waited), "woke after {waited} ns");
}

#[test]
fn sleep_until_ns_uses_the_context_clock() {
    let (rt, clock) = manual_runtime();
    clock.advance_to(10_000);
    clock.auto_advance(Duration::from_nanos(100));
    let _dog = Watchdog::arm("sleep_until_ns", Duration::from_secs(30));
    rt.block_on(sleep_until_ns(12_345)).unwrap();
    assert!(rt.context().now_ns() >= 12_345);
}

#[test]
fn sleep_until_an_instant_wakes_not_before_it_and_at_once_if_past() {
    // The system clock: the deadline is an Instant.
    let rt = Runtime::new(AioContext::new().unwrap());
    let _dog = Watchdog::arm("sleep_until an Instant", Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_micros(200);
    rt.block_on(sleep_until(deadline)).unwrap();
    assert!(Instant::now() >= deadline, "woke before its instant");
    // A manual clock that never moves: only a deadline already past can
    // complete (a wait would hang, and the watchdog say so).
    let (rt, _clock) = manual_runtime();
    rt.block_on(sleep_until(Instant::now() - Duration::from_millis(1)))
        .unwrap();
}

#[test]
fn timeout_gives_elapsed_and_drops_the_future() {
    let (rt, clock) = manual_runtime();
    clock.auto_advance(Duration::from_micros(1));
    let _dog = Watchdog::arm("a timeout", Duration::from_secs(30));
    let r = rt
        .block_on(timeout(
            Duration::from_micros(50),
            sleep(Duration::from_secs(1)),
        ))
        .unwrap();
    let elapsed: Elapsed = r.unwrap_err();
    assert_eq!(elapsed.to_string(), "timed out after 50µs");
    let ok = rt
        .block_on(timeout(Duration::from_secs(1), async { 5 }))
        .unwrap();
    assert_eq!(ok, Ok(5));
}

#[test]
fn interval_ticks_every_period_without_drift() {
    let (rt, clock) = manual_runtime();
    clock.auto_advance(Duration::from_nanos(10));
    let _dog = Watchdog::arm("ten interval ticks", Duration::from_secs(30));
    let ticks = rt
        .block_on(async {
            let mut every = interval(Duration::from_micros(10));
            let mut ticks = Vec::new();
            for _ in 0..10 {
                ticks.push(every.tick().await);
            }
            ticks
        })
        .unwrap();
    let first = ticks[0];
    for (i, t) in ticks.iter().enumerate() {
        assert_eq!(*t, first + i as u64 * 10_000, "tick {i}: {ticks:?}");
    }
}

#[test]
fn dropping_a_sleep_cancels_its_timer() {
    let (rt, _clock) = manual_runtime();
    rt.block_on(async {
        let mut s = std::pin::pin!(sleep(Duration::from_secs(3600)));
        assert!(futures::poll!(s.as_mut()).is_pending());
    })
    .unwrap();
    // No timer left: a non-blocking iteration has nothing to run, and the
    // loop's next wait is not capped by an hour-long timer.
    assert!(!rt.context().poll(false).unwrap());
}
