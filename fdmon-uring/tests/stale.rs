//! Stale completions: a poll that is in flight (or has completed) when its
//! handler is removed never reaches another handler, even one registered
//! on a new fd that got the same number, and is never re-armed.

mod common;

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::{Count, counting};
use aio_core::{EventNotifier, FdHandler, FdMonitor, Interest, Registration, Token};
use fdmon_uring::TaskRun;

fn draining(runs: &Count, n: &Rc<EventNotifier>) -> FdHandler {
    let (runs, n) = (runs.clone(), Rc::clone(n));
    FdHandler::new().on_read(move |_| {
        n.test_and_clear().unwrap();
        runs.hit();
    })
}

/// The old handler's poll is in flight (armed in the kernel, fd idle) when
/// it is removed and its fd closed; a new eventfd gets the same number and
/// a new handler. The old handler never runs; the new one runs once per
/// readiness.
#[test]
fn an_in_flight_poll_never_reaches_the_handler_of_a_reused_fd_number() {
    let _serial = common::one_at_a_time();
    for mode in TaskRun::ALL {
        let ctx = common::context(mode);
        let first = EventNotifier::new().unwrap();
        let fd = first.as_raw_fd();
        let (old_runs, new_runs) = (Count::new(), Count::new());
        ctx.set_fd_handler(fd, Some(counting(&old_runs))).unwrap();
        assert!(
            !ctx.poll(false).unwrap(),
            "{mode:?}: the poll is now in flight"
        );

        ctx.set_fd_handler(fd, None).unwrap();
        drop(first);
        let second = Rc::new(EventNotifier::new().unwrap());
        assert_eq!(
            second.as_raw_fd(),
            fd,
            "the kernel reuses the lowest number"
        );
        ctx.set_fd_handler(fd, Some(draining(&new_runs, &second)))
            .unwrap();

        assert!(!ctx.poll(false).unwrap(), "{mode:?}: nothing is ready");
        for i in 1..=3 {
            second.set().unwrap();
            assert!(ctx.poll(true).unwrap(), "{mode:?}");
            assert!(!ctx.poll(false).unwrap(), "{mode:?}: drained");
            assert_eq!((old_runs.get(), new_runs.get()), (0, i), "{mode:?}");
        }
        ctx.set_fd_handler(fd, None).unwrap();
    }
}

/// As above, but the old poll has already completed (the fd was made
/// ready after the poll was submitted) when the handler is removed: its
/// completion is collected by the next wait and dropped.
#[test]
fn a_completed_poll_of_a_removed_handler_is_dropped() {
    let _serial = common::one_at_a_time();
    for mode in TaskRun::ALL {
        let ctx = common::context(mode);
        let first = EventNotifier::new().unwrap();
        let fd = first.as_raw_fd();
        let (old_runs, new_runs) = (Count::new(), Count::new());
        ctx.set_fd_handler(fd, Some(counting(&old_runs))).unwrap();
        assert!(!ctx.poll(false).unwrap(), "{mode:?}");
        first.set().unwrap(); // the poll completes (or its task work is queued)

        ctx.set_fd_handler(fd, None).unwrap();
        drop(first);
        let second = Rc::new(EventNotifier::new().unwrap());
        assert_eq!(second.as_raw_fd(), fd);
        ctx.set_fd_handler(fd, Some(draining(&new_runs, &second)))
            .unwrap();

        for _ in 0..3 {
            assert!(!ctx.poll(false).unwrap(), "{mode:?}: the new fd is idle");
        }
        assert_eq!((old_runs.get(), new_runs.get()), (0, 0), "{mode:?}");
        second.set().unwrap();
        assert!(ctx.poll(true).unwrap());
        assert_eq!((old_runs.get(), new_runs.get()), (0, 1), "{mode:?}");
        ctx.set_fd_handler(fd, None).unwrap();
    }
}

/// On the bare monitor: a completion for a removed registration is never
/// reported under the new token of the fd number, and the removed
/// registration's poll is not re-armed (it reports nothing more).
#[test]
fn the_monitor_drops_completions_of_removed_registrations() {
    let _serial = common::one_at_a_time();
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        let reg = |token| {
            Some(Registration {
                token: Token(token),
                interest: Interest::READABLE,
            })
        };
        let first = EventNotifier::new().unwrap();
        let fd = first.as_raw_fd();
        let mut events = Vec::new();
        m.update(fd, None, reg(1)).unwrap();
        m.wait(&mut events, Some(Duration::ZERO)).unwrap();
        first.set().unwrap();
        m.update(fd, reg(1), None).unwrap();
        drop(first);
        let second = EventNotifier::new().unwrap();
        assert_eq!(second.as_raw_fd(), fd);
        m.update(fd, None, reg(2)).unwrap();
        for _ in 0..3 {
            m.wait(&mut events, Some(Duration::ZERO)).unwrap();
        }
        m.wait(&mut events, Some(Duration::from_micros(200)))
            .unwrap();
        assert_eq!(events, [], "{mode:?}");
        second.set().unwrap();
        m.wait(&mut events, None).unwrap();
        assert_eq!(events.len(), 1, "{mode:?}: {events:?}");
        assert_eq!(events[0].token, Token(2));
    }
}

/// A handler replaced while its re-arm is queued: the replacement's poll
/// is the only one armed, so a readiness is dispatched once, to the new
/// handler.
#[test]
fn a_replacement_is_armed_once() {
    let _serial = common::one_at_a_time();
    for mode in TaskRun::ALL {
        let ctx = common::context(mode);
        let n = Rc::new(EventNotifier::new().unwrap());
        let (old_runs, new_runs) = (Count::new(), Count::new());
        ctx.set_fd_handler(&*n, Some(draining(&old_runs, &n)))
            .unwrap();
        n.set().unwrap();
        assert!(ctx.poll(true).unwrap());
        // The re-arm of the old registration is queued now.
        ctx.set_fd_handler(&*n, Some(draining(&new_runs, &n)))
            .unwrap();
        for i in 1..=3 {
            n.set().unwrap();
            assert!(ctx.poll(true).unwrap());
            assert!(!ctx.poll(false).unwrap(), "{mode:?}");
            assert_eq!((old_runs.get(), new_runs.get()), (1, i), "{mode:?}");
        }
        ctx.set_fd_handler(&*n, None).unwrap();
    }
}
