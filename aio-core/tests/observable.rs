//! Behaviour that depends on whether the monitor shows readiness without a
//! system call (io_uring's completion ring; here the sim's observable mode).

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
fn handler_without_poll_turns_polling_off_only_where_the_monitor_needs_a_syscall() {
    for (h, polls) in [(Harness::sim(), false), (Harness::sim_observable(), true)] {
        let f = polling(&h);
        let _device = device(&f);
        let _reader = plain_reader(&f);
        let timer = f.ctx.timer(|_| {});
        timer.arm_in(Duration::from_micros(100));
        f.ctx.poll(true).unwrap();
        let stats = f.ctx.stats();
        assert_eq!(stats.poll_hits + stats.poll_misses > 0, polls, "{h:?}");
    }
}

#[test]
fn readiness_seen_in_the_poll_window_ends_it_without_blocking() {
    let f = polling(&Harness::sim_observable());
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
fn idle_polled_handler_is_evicted_after_7s_only_on_an_observable_monitor() {
    for (h, evicts) in [(Harness::sim(), false), (Harness::sim_observable(), true)] {
        let f = polling(&h);
        let (ev, begins, ends) = device(&f);
        let timer = f.ctx.timer(|_| {});
        for _ in 0..3 {
            f.clock().advance(Duration::from_secs(4));
            timer.arm_in(Duration::from_micros(100));
            f.ctx.poll(true).unwrap();
        }
        assert_eq!(f.ctx.poll_time(&*ev).is_none(), evicts, "{h:?}");
        assert_eq!(f.ctx.stats().polled_handlers, usize::from(!evicts), "{h:?}");
        assert_eq!(
            begins.get(),
            ends.get(),
            "{h:?}: poll_begin and poll_end pair up"
        );
        if evicts {
            ev.set();
            f.ctx.poll(true).unwrap();
            assert!(
                f.ctx.poll_time(&*ev).is_some(),
                "back on the list once it fired"
            );
        }
    }
}
