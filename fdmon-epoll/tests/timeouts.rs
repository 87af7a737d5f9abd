//! Nanosecond waits on both wait paths: a sub-millisecond timeout neither
//! spins nor becomes a millisecond, a timer fires after one wait and not
//! before its deadline; and more ready fds than the event buffer holds are
//! all served within a few iterations.

use std::cell::Cell;
use std::rc::Rc;

use aio_core::{AioContext, EventNotifier, FdHandler};
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

#[test]
fn a_100us_timeout_sleeps_at_least_100us_and_well_under_a_millisecond() {
    for (_, make) in monitors() {
        aio_core::testing::assert_short_waits_are_precise(&mut make());
    }
}

#[test]
fn a_200us_timer_fires_after_one_wait_not_before_its_deadline() {
    for (_, make) in monitors() {
        aio_core::testing::assert_short_timers_fire_after_one_wait(Box::new(make()));
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
