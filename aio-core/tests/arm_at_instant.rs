//! `Timer::arm_at` takes an `Instant`, on the monotonic clock and on a
//! manual one; `arm_at_ns` keeps the clock's own nanoseconds.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use aio_core::testing::SleepMonitor;
use aio_core::{AioContext, ContextBuilder, ManualClock, Timer};

fn counting_timer(ctx: &AioContext) -> (Timer, Rc<Cell<u32>>) {
    let fired = Rc::new(Cell::new(0));
    let f = Rc::clone(&fired);
    (ctx.timer(move |_| f.set(f.get() + 1)), fired)
}

#[test]
fn an_instant_in_the_past_fires_next_and_one_ahead_waits() {
    let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new())).unwrap();
    let (timer, fired) = counting_timer(&ctx);
    timer.arm_at(
        Instant::now()
            .checked_sub(Duration::from_secs(1))
            .unwrap_or_else(Instant::now),
    );
    ctx.poll(false).unwrap();
    assert_eq!(
        fired.get(),
        1,
        "a past deadline fires in the next iteration"
    );

    timer.arm_at(Instant::now() + Duration::from_secs(3600));
    ctx.poll(false).unwrap();
    assert_eq!(fired.get(), 1, "an hour ahead: not yet");
    let left = timer.deadline_ns().unwrap() - ctx.now_ns();
    assert!(left > 3_000_000_000_000, "{left} ns left");
}

#[test]
fn on_a_manual_clock_an_instant_is_as_far_from_the_manual_time() {
    let clock = ManualClock::new();
    clock.advance_to(5_000_000);
    let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
        .clock(clock.clone())
        .build()
        .unwrap();
    let (timer, fired) = counting_timer(&ctx);
    timer.arm_at(Instant::now() + Duration::from_secs(10));
    let deadline = timer.deadline_ns().unwrap();
    // The real time moved a little between the two readings of it.
    assert!(
        (5_000_000 + 9_000_000_000..=5_000_000 + 10_000_000_000).contains(&deadline),
        "{deadline}"
    );
    ctx.poll(false).unwrap();
    assert_eq!(fired.get(), 0);
    clock.advance_to(deadline);
    ctx.poll(false).unwrap();
    assert_eq!(fired.get(), 1, "fires when the manual time gets there");

    timer.arm_at_ns(deadline + 100);
    assert_eq!(
        timer.deadline_ns(),
        Some(deadline + 100),
        "nanoseconds as given"
    );
}
