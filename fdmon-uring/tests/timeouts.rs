//! Nanosecond waits: a sub-millisecond timeout neither spins nor becomes a
//! millisecond, a timer fires after one wait and not before its deadline,
//! and an infinite wait ends when another thread makes an fd ready; in
//! every task-running mode.

mod common;

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use aio_core::testing::{ThreadProbe, Watchdog};
use aio_core::{EventNotifier, FdMonitor, Interest, Registration, Token};
use fdmon_uring::TaskRun;

#[test]
fn a_100us_timeout_sleeps_at_least_100us_and_well_under_a_millisecond() {
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        let enters = m.enters();
        aio_core::testing::assert_short_waits_are_precise(&mut m);
        let trials = aio_core::testing::TIMING_TRIALS as u64;
        assert_eq!(
            m.enters() - enters,
            trials,
            "{mode:?}: one enter per wait, no spinning"
        );
    }
}

#[test]
fn a_200us_timer_fires_after_one_wait_not_before_its_deadline() {
    for mode in TaskRun::ALL {
        aio_core::testing::assert_short_timers_fire_after_one_wait(Box::new(common::monitor(mode)));
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
        let written = Arc::new(AtomicBool::new(false));
        let _watchdog = Watchdog::arm(
            format!("{mode:?}: an fd made ready to end an infinite wait"),
            Duration::from_secs(20),
        );
        let waiter = ThreadProbe::current();
        let writer = {
            let (n, written) = (Arc::clone(&n), Arc::clone(&written));
            std::thread::spawn(move || {
                waiter.wait_until_blocked();
                written.store(true, Ordering::SeqCst);
                n.set().unwrap();
            })
        };
        let mut events = Vec::new();
        m.wait(&mut events, None).unwrap();
        assert!(
            written.load(Ordering::SeqCst),
            "{mode:?}: returned before the fd was made ready"
        );
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
