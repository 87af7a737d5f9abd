//! Timers: deadlines, re-arming, and how long a blocking `poll` sleeps.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::testing::{Count, Harness};

/// A timer does not fire before its deadline, and fires in the first `poll`
/// after it (manual clock).
pub fn timer_fires_at_deadline_not_before(h: &Harness) {
    let f = h.fixture_manual();
    let fired = Count::new();
    let c = fired.clone();
    let timer = f.ctx.timer(move |_| c.hit());
    timer.arm_in(Duration::from_micros(200));
    assert!(timer.is_armed());
    assert!(!f.poll(false).unwrap());
    f.clock().advance(Duration::from_nanos(199_999));
    assert!(!f.poll(false).unwrap());
    assert_eq!(fired.get(), 0, "not before the deadline");
    f.clock().advance(Duration::from_nanos(1));
    assert!(f.poll(false).unwrap());
    assert_eq!(fired.get(), 1, "in the first poll after it");
    assert!(!timer.is_armed());
    assert!(!f.poll(false).unwrap());
    assert_eq!(fired.get(), 1);
}

/// A timer re-armed from its own callback fires again, once per deadline.
pub fn timer_rearms_from_callback(h: &Harness) {
    let f = h.fixture_manual();
    let fired = Count::new();
    let slot: Rc<RefCell<Option<crate::Timer>>> = Rc::default();
    let (c, s) = (fired.clone(), Rc::clone(&slot));
    *slot.borrow_mut() = Some(f.ctx.timer(move |_| {
        c.hit();
        if c.get() < 3 {
            s.borrow()
                .as_ref()
                .unwrap()
                .arm_in(Duration::from_micros(100));
        }
    }));
    slot.borrow()
        .as_ref()
        .unwrap()
        .arm_in(Duration::from_micros(100));
    for want in 1..=3 {
        f.poll(false).unwrap();
        assert_eq!(fired.get(), want - 1);
        f.clock().advance(Duration::from_micros(100));
        f.poll(false).unwrap();
        assert_eq!(fired.get(), want);
    }
    assert!(!slot.borrow().as_ref().unwrap().is_armed());
    slot.borrow_mut().take();
}

/// Timers fire in deadline order, first armed first among equals; a
/// cancelled or dropped one does not fire.
pub fn timers_fire_in_order_and_cancel(h: &Harness) {
    let f = h.fixture_manual();
    let order = Rc::new(RefCell::new(Vec::new()));
    let make = |name: &'static str| {
        let o = Rc::clone(&order);
        f.ctx.timer(move |_| o.borrow_mut().push(name))
    };
    let (late, a, b, cancelled, dropped) = (
        make("late"),
        make("a"),
        make("b"),
        make("cancelled"),
        make("dropped"),
    );
    late.arm_in(Duration::from_micros(30));
    a.arm_in(Duration::from_micros(10));
    b.arm_in(Duration::from_micros(10));
    cancelled.arm_in(Duration::from_micros(5));
    dropped.arm_in(Duration::from_micros(5));
    cancelled.cancel();
    drop(dropped);
    f.clock().advance(Duration::from_micros(50));
    assert!(f.poll(false).unwrap());
    assert_eq!(*order.borrow(), ["a", "b", "late"]);
}

/// A blocking `poll` sleeps until the nearest timer, in one wait (manual
/// clock: the wait's timeout is the time to the deadline).
pub fn blocking_poll_sleeps_until_nearest_timer(h: &Harness) {
    let f = h.fixture_manual();
    let fired = Count::new();
    let (c1, c2) = (fired.clone(), fired.clone());
    let near = f.ctx.timer(move |_| c1.hit());
    let far = f.ctx.timer(move |_| c2.hit());
    far.arm_in(Duration::from_micros(900));
    near.arm_in(Duration::from_micros(300));
    let start = f.ctx.now_ns();
    let before = f.blocking_waits();
    assert!(f.poll(true).unwrap());
    assert_eq!(fired.get(), 1, "only the nearest fired");
    assert_eq!(
        f.ctx.now_ns() - start,
        300_000,
        "slept exactly until the nearest deadline"
    );
    assert_eq!(f.blocking_waits() - before, 1);
    assert!(far.is_armed());
}

/// On the real clock: a 2 ms timer wakes a blocking `poll` no earlier than
/// its deadline and within a generous bound, after a single blocking wait.
pub fn blocking_poll_wakes_for_timer_real_clock(h: &Harness) {
    let f = h.fixture();
    let fired = Count::new();
    let c = fired.clone();
    let timer = f.ctx.timer(move |_| c.hit());
    let armed_at = Instant::now();
    timer.arm_in(Duration::from_millis(2));
    let before = f.blocking_waits();
    while fired.get() == 0 {
        f.poll(true).unwrap();
    }
    let took = armed_at.elapsed();
    assert!(took >= Duration::from_millis(2), "fired early: {took:?}");
    assert!(
        took < Duration::from_secs(2),
        "fired far too late: {took:?}"
    );
    let blocking = f.blocking_waits() - before;
    assert!(
        blocking <= 2,
        "{blocking} blocking waits for one timer: the loop spun"
    );
}
