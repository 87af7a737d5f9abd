//! Level semantics: a one-shot poll is re-armed after each completion, so
//! an fd that stays ready and is not drained is reported by every wait, in
//! every task-running mode.

mod common;

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use aio_core::{EventNotifier, FdHandler, FdMonitor, Interest, Readiness, Registration, Token};
use fdmon_uring::TaskRun;

/// An eventfd set once and never read is dispatched by two consecutive
/// `poll(false)`, then by two consecutive `poll(true)`.
#[test]
fn an_undrained_fd_is_dispatched_by_every_iteration() {
    for mode in TaskRun::ALL {
        let ctx = common::context(mode);
        let n = EventNotifier::new().unwrap();
        let runs = Rc::new(Cell::new(0));
        let r = Rc::clone(&runs);
        ctx.set_fd_handler(
            &n,
            Some(FdHandler::new().on_read(move |_| r.set(r.get() + 1))),
        )
        .unwrap();
        n.set().unwrap();
        for (i, blocking) in [false, false, true, true].into_iter().enumerate() {
            assert!(ctx.poll(blocking).unwrap(), "{mode:?}: iteration {i}");
            assert_eq!(runs.get(), i + 1, "{mode:?}: poll({blocking}) dispatched");
        }
        // Drained: no more dispatches.
        assert!(n.test_and_clear().unwrap());
        assert!(!ctx.poll(false).unwrap(), "{mode:?}");
        assert!(!ctx.poll(false).unwrap(), "{mode:?}");
        assert_eq!(runs.get(), 4, "{mode:?}");
        ctx.set_fd_handler(&n, None).unwrap();
    }
}

/// The same on the bare monitor: every zero-timeout wait reports the
/// token, once, until the fd is drained.
#[test]
fn every_wait_reports_an_undrained_fd_once() {
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        let n = EventNotifier::new().unwrap();
        let reg = Registration {
            token: Token(7),
            interest: Interest::READABLE,
        };
        m.update(n.as_raw_fd(), None, Some(reg)).unwrap();
        n.set().unwrap();
        let mut events = Vec::new();
        for _ in 0..3 {
            events.clear();
            m.wait(&mut events, Some(Duration::ZERO)).unwrap();
            assert_eq!(events.len(), 1, "{mode:?}: {events:?}");
            assert_eq!(events[0].token, Token(7));
            assert!(events[0].readiness.contains(Readiness::READABLE));
        }
        n.test_and_clear().unwrap();
        events.clear();
        m.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events, [], "{mode:?}: drained");
        // And a blocking wait times out instead of reporting it.
        m.wait(&mut events, Some(Duration::from_micros(100)))
            .unwrap();
        assert_eq!(events, [], "{mode:?}: drained");
    }
}

/// A writable fd with both interests reports both bits merged into one
/// event per wait.
#[test]
fn both_directions_are_merged_into_one_event() {
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        let n = EventNotifier::new().unwrap();
        let reg = Registration {
            token: Token(9),
            interest: Interest::BOTH,
        };
        m.update(n.as_raw_fd(), None, Some(reg)).unwrap();
        n.set().unwrap();
        for _ in 0..2 {
            let mut events = Vec::new();
            m.wait(&mut events, None).unwrap();
            assert_eq!(events.len(), 1, "{mode:?}: {events:?}");
            assert!(
                events[0]
                    .readiness
                    .contains(Readiness::READABLE.with(Readiness::WRITABLE)),
                "{mode:?}: {events:?}"
            );
        }
    }
}
