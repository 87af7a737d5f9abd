//! Busy polling with handlers that have no `poll` callback: the window peeks
//! at the monitor (for free where it shows readiness without a system call,
//! like io_uring's completion ring, here the sim's observable mode; with a
//! zero-timeout wait elsewhere), and idle handlers leave the polled list.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::{Count, Fixture, Harness};
use aio_core::{FdHandler, PollParams};

fn polling(h: &Harness) -> Fixture {
    let f = h.fixture_manual();
    f.clock().auto_advance(Duration::from_nanos(100));
    f.ctx.set_poll_params(PollParams::IOTHREAD);
    f.set_wait_time(Duration::from_micros(1));
    f
}

/// A polled device (`poll` never finds work) plus counters of begin/end.
fn device(f: &Fixture) -> (Rc<aio_core::testing::TestEvent>, Count, Count) {
    let ev = Rc::new(f.event());
    let (begins, ends) = (Count::new(), Count::new());
    let (e, b, n) = (Rc::clone(&ev), begins.clone(), ends.clone());
    f.ctx
        .set_fd_handler(
            &*ev,
            Some(
                FdHandler::new()
                    .on_read(move |_| {
                        e.clear();
                    })
                    .on_poll(|| false, |_| {})
                    .on_poll_begin(move || b.hit())
                    .on_poll_end(move || n.hit()),
            ),
        )
        .unwrap();
    ev.set();
    f.ctx.poll(true).unwrap(); // on the polled list, 4 us
    (ev, begins, ends)
}

fn plain_reader(f: &Fixture) -> Rc<aio_core::testing::TestEvent> {
    let ev = Rc::new(f.event());
    let e = Rc::clone(&ev);
    f.ctx
        .set_fd_handler(
            &*ev,
            Some(FdHandler::new().on_read(move |_| {
                e.clear();
            })),
        )
        .unwrap();
    ev
}

#[test]
fn handler_without_poll_does_not_turn_polling_off() {
    for h in [Harness::sim(), Harness::sim_observable()] {
        let f = polling(&h);
        let _device = device(&f);
        let _reader = plain_reader(&f);
        let timer = f.ctx.timer(|_| {});
        timer.arm_in(Duration::from_micros(100));
        f.ctx.poll(true).unwrap();
        let stats = f.ctx.stats();
        assert_eq!(stats.poll_hits + stats.poll_misses, 1, "{h:?}: one window");
    }
}

#[test]
fn expensive_peeks_turn_polling_off_where_a_handler_has_no_poll_callback() {
    let f = polling(&Harness::sim());
    // Each clock reading costs 100 ns, so a peek measures at least 100 ns:
    // more than an eighth of a 500 ns window.
    f.ctx.set_poll_params(PollParams {
        max_ns: 500,
        grow: 0,
        shrink: 0,
    });
    f.set_wait_time(Duration::ZERO);
    let _device = device(&f);
    assert_eq!(f.ctx.stats().max_poll_ns, 500);
    let _reader = plain_reader(&f);
    let timer = f.ctx.timer(|_| {});
    for _ in 0..10 {
        timer.arm_in(Duration::from_micros(100));
        f.ctx.poll(true).unwrap();
    }
    // The window that measured the peek, then probes after 1, 2 and 4
    // refused windows (iterations 0, 2 and 5 of 10).
    let stats = f.ctx.stats();
    assert_eq!(
        stats.poll_hits + stats.poll_misses,
        3,
        "the measuring window and two probes: {stats:?}"
    );
    assert_eq!(stats.poll_refusals, 7, "{stats:?}");
}

#[test]
fn readiness_seen_in_the_poll_window_ends_it_without_blocking() {
    for h in [Harness::sim(), Harness::sim_observable()] {
        readiness_seen_in_the_poll_window(&h);
    }
}

fn readiness_seen_in_the_poll_window(h: &Harness) {
    let f = polling(h);
    let _device = device(&f);
    let reader = plain_reader(&f);
    let reads = Rc::new(Cell::new(0));
    let (r, e) = (Rc::clone(&reads), Rc::clone(&reader));
    f.ctx
        .set_fd_handler(
            &*reader,
            Some(FdHandler::new().on_read(move |_| {
                e.clear();
                r.set(r.get() + 1);
            })),
        )
        .unwrap();
    reader.set();
    let before = f.ctx.stats();
    assert!(f.ctx.poll(true).unwrap());
    let after = f.ctx.stats();
    assert_eq!(reads.get(), 1);
    assert_eq!(
        after.poll_hits - before.poll_hits,
        1,
        "the monitor's readiness counted as a polling hit"
    );
    assert_eq!(
        after.blocking_waits, before.blocking_waits,
        "collected without a blocking wait"
    );
}

#[test]
fn a_plain_handler_that_keeps_firing_stays_polled() {
    let f = polling(&Harness::sim());
    let reader = plain_reader(&f);
    for _ in 0..4 {
        f.clock().advance(Duration::from_secs(4));
        reader.set();
        f.ctx.poll(true).unwrap();
    }
    assert!(f.ctx.poll_time(&*reader).is_some());
}
