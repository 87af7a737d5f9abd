//! Registrations the kernel has a say in: fds closed behind the context's
//! back, hang-ups, interests, a token the monitor reserves. The tests run
//! one at a time, since some close fds whose numbers matter.

mod common;

use std::cell::Cell;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::{Count, assert_still_works, counting};
use aio_core::{
    AioContext, EventNotifier, FdHandler, FdMonitor, Interest, Readiness, Registration, Token,
};
use fdmon_uring::TaskRun;

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two fds that pipe2 writes.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    // SAFETY: pipe2 succeeded: both fds are open and owned by nobody else.
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// The context works, with nothing of the test registered.
fn assert_clean(ctx: &AioContext) {
    assert_eq!(ctx.handler_count(), 0, "nothing of the test is left");
    assert_still_works(ctx, None);
}

#[test]
fn removing_a_closed_fd_succeeds() {
    let _serial = common::one_at_a_time();
    for mode in TaskRun::ALL {
        let ctx = common::context(mode);
        // Closed before its poll was submitted.
        let n = EventNotifier::new().unwrap();
        let fd = n.as_raw_fd();
        ctx.set_fd_handler(fd, Some(counting(&Count::new())))
            .unwrap();
        drop(n);
        ctx.set_fd_handler(fd, None).unwrap();
        assert_clean(&ctx);

        // Closed while its poll is in flight.
        let n = EventNotifier::new().unwrap();
        let fd = n.as_raw_fd();
        ctx.set_fd_handler(fd, Some(counting(&Count::new())))
            .unwrap();
        assert!(!ctx.poll(false).unwrap());
        drop(n);
        ctx.set_fd_handler(fd, None).unwrap();
        assert_clean(&ctx);
    }
}

/// An fd closed while registered, whose poll never reached the kernel,
/// shows as an error (as `POLLNVAL` does with `poll(2)`), so that its
/// handler learns of it and can remove itself.
#[test]
fn an_fd_closed_before_its_poll_was_submitted_reports_an_error() {
    let _serial = common::one_at_a_time();
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        let n = EventNotifier::new().unwrap();
        let fd = n.as_raw_fd();
        let reg = Some(Registration {
            token: Token(3),
            interest: Interest::READABLE,
        });
        m.update(fd, None, reg).unwrap();
        drop(n);
        let mut events = Vec::new();
        m.wait(&mut events, Some(Duration::from_secs(5))).unwrap();
        assert_eq!(events.len(), 1, "{mode:?}");
        assert_eq!(events[0].token, Token(3));
        assert!(events[0].readiness.contains(Readiness::ERROR), "{events:?}");
        m.update(fd, reg, None).unwrap();
        events.clear();
        m.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events, [], "{mode:?}: removed");
    }
}

#[test]
fn a_hung_up_pipe_is_dispatched_as_readable() {
    let _serial = common::one_at_a_time();
    for mode in TaskRun::ALL {
        let ctx = common::context(mode);
        let (reader, writer) = pipe();
        let hits = Count::new();
        ctx.set_fd_handler(&reader, Some(counting(&hits))).unwrap();
        assert!(!ctx.poll(false).unwrap());
        drop(writer);
        assert!(ctx.poll(true).unwrap());
        assert!(ctx.poll(false).unwrap(), "{mode:?}: a hang-up stays");
        assert_eq!(hits.get(), 2);
        ctx.set_fd_handler(&reader, None).unwrap();
    }
}

/// A replacement may change the interest: from reading an empty pipe to
/// writing into it.
#[test]
fn a_replacement_changes_the_interest() {
    let _serial = common::one_at_a_time();
    for mode in TaskRun::ALL {
        let ctx = common::context(mode);
        let (_reader, writer) = pipe();
        let (reads, writes) = (Count::new(), Rc::new(Cell::new(0)));
        ctx.set_fd_handler(&writer, Some(counting(&reads))).unwrap();
        assert!(
            !ctx.poll(false).unwrap(),
            "{mode:?}: no POLLIN on a write end"
        );
        let w = Rc::clone(&writes);
        ctx.set_fd_handler(
            &writer,
            Some(FdHandler::new().on_write(move |_| w.set(w.get() + 1))),
        )
        .unwrap();
        assert!(ctx.poll(true).unwrap(), "{mode:?}");
        assert!(ctx.poll(true).unwrap(), "{mode:?}: still writable");
        assert_eq!((reads.get(), writes.get()), (0, 2), "{mode:?}");
        ctx.set_fd_handler(&writer, None).unwrap();
    }
}

/// A regular file is always ready, as with `poll(2)` (epoll refuses it).
#[test]
fn a_regular_file_is_always_readable() {
    let _serial = common::one_at_a_time();
    let ctx = common::context(TaskRun::default());
    let file = File::open(std::env::current_exe().unwrap()).unwrap();
    let hits = Count::new();
    ctx.set_fd_handler(&file, Some(counting(&hits))).unwrap();
    assert!(ctx.poll(false).unwrap());
    assert!(ctx.poll(true).unwrap());
    assert_eq!(hits.get(), 2);
    ctx.set_fd_handler(&file, None).unwrap();
}

/// `u64::MAX` marks the monitor's own requests: a registration with that
/// token is refused, and the monitor holds nothing new.
#[test]
fn the_reserved_token_is_refused() {
    let _serial = common::one_at_a_time();
    let mut m = common::monitor(TaskRun::default());
    let n = EventNotifier::new().unwrap();
    let err = m
        .update(
            n.as_raw_fd(),
            None,
            Some(Registration {
                token: Token(u64::MAX),
                interest: Interest::READABLE,
            }),
        )
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(m.is_empty());
}

/// More registration changes in one iteration than the submission queue
/// holds: the queue is submitted as it fills.
#[test]
fn more_changes_than_the_queue_holds() {
    let _serial = common::one_at_a_time();
    for mode in [
        TaskRun::Interrupt,
        TaskRun::default(),
        TaskRun::DeferredFlag,
    ] {
        let options = fdmon_uring::UringOptions::default()
            .entries(8)
            .task_run(mode);
        let ctx = AioContext::with_monitor(Box::new(
            fdmon_uring::UringMonitor::with_options(options).unwrap(),
        ))
        .unwrap();
        let notifiers: Vec<EventNotifier> =
            (0..100).map(|_| EventNotifier::new().unwrap()).collect();
        let hits = Count::new();
        for n in &notifiers {
            ctx.set_fd_handler(n, Some(counting(&hits))).unwrap();
            n.set().unwrap();
        }
        // The completion queue (16 entries) overflows too.
        assert!(ctx.poll(true).unwrap());
        assert_eq!(hits.get(), 100, "{mode:?}: each reported once");
        assert!(ctx.poll(true).unwrap());
        assert_eq!(hits.get(), 200, "{mode:?}: and again (level)");
        for n in &notifiers {
            ctx.set_fd_handler(n, None).unwrap();
        }
        assert_clean(&ctx);
    }
}
