//! Nanosecond waits on both wait paths: a sub-millisecond timeout neither
//! spins nor becomes a millisecond, a timer fires after one wait and not
//! before its deadline; and more ready fds than the event buffer holds are
//! all served within a few iterations.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use aio_core::{AioContext, EventNotifier, FdHandler, FdMonitor};
use fdmon_epoll::EpollMonitor;

/// A wait path's name and a maker of monitors on it.
type Path = (&'static str, fn() -> EpollMonitor);

fn monitors() -> [Path; 2] {
    [
        ("epoll_pwait2", || EpollMonitor::new().unwrap()),
        ("ppoll fallback", || {
            EpollMonitor::new().unwrap().force_ppoll_fallback()
        }),
    ]
}

const TRIALS: usize = 20;

#[test]
fn a_100us_timeout_sleeps_at_least_100us_and_well_under_a_millisecond() {
    for (path, make) in monitors() {
        let mut monitor = make();
        let mut events = Vec::new();
        let mut shortest = Duration::MAX;
        for _ in 0..TRIALS {
            let start = Instant::now();
            monitor
                .wait(&mut events, Some(Duration::from_micros(100)))
                .unwrap();
            let slept = start.elapsed();
            assert!(events.is_empty(), "{path}: nothing is registered");
            assert!(slept >= Duration::from_micros(100), "{path}: {slept:?}");
            shortest = shortest.min(slept);
        }
        // Rounded up to a millisecond, every trial would last one.
        assert!(
            shortest < Duration::from_micros(800),
            "{path}: the shortest of {TRIALS} waits took {shortest:?}"
        );
    }
}

#[test]
fn a_200us_timer_fires_after_one_wait_not_before_its_deadline() {
    for (path, make) in monitors() {
        let ctx = AioContext::with_monitor(Box::new(make())).unwrap();
        let fired_at = Rc::new(Cell::new(None));
        let f = Rc::clone(&fired_at);
        let timer = ctx.timer(move |ctx| f.set(Some(ctx.now_ns())));
        let mut shortest = u64::MAX;
        for _ in 0..TRIALS {
            fired_at.set(None);
            let before = ctx.stats();
            timer.arm_in(Duration::from_micros(200));
            let deadline = timer.deadline_ns().unwrap();
            let armed = deadline - 200_000;
            assert!(ctx.poll(true).unwrap(), "{path}: the timer ran");
            let after = ctx.stats();
            let fired = fired_at.get().expect("fired in the first poll");
            assert!(fired >= deadline, "{path}: {} ns early", deadline - fired);
            assert_eq!(after.waits - before.waits, 1, "{path}: {after:?}");
            assert_eq!(after.blocking_waits - before.blocking_waits, 1, "{path}");
            shortest = shortest.min(fired - armed);
        }
        assert!(
            shortest < 800_000,
            "{path}: the quickest of {TRIALS} 200 us timers took {shortest} ns"
        );
    }
}

#[test]
fn more_ready_fds_than_the_buffer_holds_are_all_served() {
    for (path, make) in monitors() {
        let ctx = AioContext::with_monitor(Box::new(make())).unwrap();
        let count = 3 * EpollMonitor::INITIAL_EVENTS;
        let hits: Vec<Rc<Cell<u32>>> = (0..count).map(|_| Rc::default()).collect();
        let fds: Vec<EventNotifier> = (0..count).map(|_| EventNotifier::new().unwrap()).collect();
        for (fd, hit) in fds.iter().zip(&hits) {
            let hit = Rc::clone(hit);
            // Never drained: every fd stays ready.
            let handler = FdHandler::new().on_read(move |_| hit.set(hit.get() + 1));
            ctx.set_fd_handler(fd, Some(handler)).unwrap();
            fd.set().unwrap();
        }
        let served = || hits.iter().filter(|h| h.get() > 0).count();
        assert!(ctx.poll(false).unwrap());
        assert_eq!(
            served(),
            EpollMonitor::INITIAL_EVENTS,
            "{path}: a full buffer"
        );
        assert!(ctx.poll(false).unwrap());
        assert_eq!(
            served(),
            count,
            "{path}: the rest, from the rotated ready list"
        );
        // The buffer has grown: one wait now collects every ready fd.
        let before: Vec<u32> = hits.iter().map(|h| h.get()).collect();
        assert!(ctx.poll(false).unwrap());
        assert!(
            hits.iter().zip(&before).all(|(h, b)| h.get() == b + 1),
            "{path}: every fd in one iteration"
        );
    }
}
