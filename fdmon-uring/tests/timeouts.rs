//! Nanosecond waits: a sub-millisecond timeout neither spins nor becomes a
//! millisecond, a timer fires after one wait and not before its deadline,
//! and an infinite wait ends when another thread makes an fd ready; in
//! every task-running mode.

mod common;

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aio_core::{EventNotifier, FdMonitor, Interest, Registration, Token};
use fdmon_uring::TaskRun;

const TRIALS: usize = 20;

#[test]
fn a_100us_timeout_sleeps_at_least_100us_and_well_under_a_millisecond() {
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        let mut events = Vec::new();
        let mut shortest = Duration::MAX;
        let enters = m.enters();
        for _ in 0..TRIALS {
            let start = Instant::now();
            m.wait(&mut events, Some(Duration::from_micros(100)))
                .unwrap();
            let slept = start.elapsed();
            assert!(events.is_empty(), "{mode:?}: nothing is registered");
            assert!(slept >= Duration::from_micros(100), "{mode:?}: {slept:?}");
            shortest = shortest.min(slept);
        }
        assert_eq!(
            m.enters() - enters,
            TRIALS as u64,
            "{mode:?}: one enter per wait, no spinning"
        );
        // Rounded up to a millisecond, every trial would last one.
        assert!(
            shortest < Duration::from_micros(800),
            "{mode:?}: the shortest of {TRIALS} waits took {shortest:?}"
        );
    }
}

#[test]
fn a_200us_timer_fires_after_one_wait_not_before_its_deadline() {
    for mode in TaskRun::ALL {
        let ctx = common::context(mode);
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
            assert!(ctx.poll(true).unwrap(), "{mode:?}: the timer ran");
            let after = ctx.stats();
            let fired = fired_at.get().expect("fired in the first poll");
            assert!(fired >= deadline, "{mode:?}: {} ns early", deadline - fired);
            assert_eq!(after.waits - before.waits, 1, "{mode:?}: {after:?}");
            assert_eq!(after.blocking_waits - before.blocking_waits, 1, "{mode:?}");
            shortest = shortest.min(fired - armed);
        }
        assert!(
            shortest < 800_000,
            "{mode:?}: the quickest of {TRIALS} 200 us timers took {shortest} ns"
        );
    }
}

#[test]
fn an_infinite_wait_ends_when_another_thread_makes_an_fd_ready() {
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        let n = Arc::new(EventNotifier::new().unwrap());
        let reg = Registration {
            token: Token(5),
            interest: Interest::READABLE,
        };
        m.update(n.as_raw_fd(), None, Some(reg)).unwrap();
        let writer = {
            let n = Arc::clone(&n);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5));
                n.set().unwrap();
            })
        };
        let start = Instant::now();
        let mut events = Vec::new();
        m.wait(&mut events, None).unwrap();
        assert!(start.elapsed() >= Duration::from_millis(4), "{mode:?}");
        assert_eq!(events.len(), 1, "{mode:?}: {events:?}");
        assert_eq!(events[0].token, Token(5));
        writer.join().unwrap();
    }
}

/// A completion the monitor drops (a removed registration's) does not end
/// a blocking wait early: the wait goes on for the time that remains.
#[test]
fn a_dropped_completion_does_not_end_a_wait_early() {
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        let n = EventNotifier::new().unwrap();
        let reg = Some(Registration {
            token: Token(8),
            interest: Interest::READABLE,
        });
        let mut events = Vec::new();
        m.update(n.as_raw_fd(), None, reg).unwrap();
        m.wait(&mut events, Some(Duration::ZERO)).unwrap();
        // The removal's poll remove (and the cancelled poll) complete in
        // the next wait, and are dropped.
        m.update(n.as_raw_fd(), reg, None).unwrap();
        let start = Instant::now();
        m.wait(&mut events, Some(Duration::from_millis(5))).unwrap();
        assert!(
            start.elapsed() >= Duration::from_millis(5),
            "{mode:?}: {:?}",
            start.elapsed()
        );
        assert_eq!(events, [], "{mode:?}");
    }
}
