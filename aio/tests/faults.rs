//! Faults injected into every monitor (poll, epoll, io_uring and the sim)
//! through `TestMonitor` with a `Faults` schedule: `update` and `wait` failing with `EINTR`,
//! `EAGAIN`, `ENOMEM` and `EBADF`, spurious readiness, duplicate events and
//! events for stale tokens. Under each, the error reaches the caller of the
//! call that failed, no callback runs for a removed handler, no
//! registration is lost or leaked (the monitor holds exactly the handlers
//! and the notifier; every callback is dropped exactly once), and the
//! context keeps working.
//!
//! An injected `EINTR` from `wait` is a wait that returned it: the core does
//! not retry (monitors do), so `poll` returns `Interrupted` and the next
//! `poll` goes on.

mod common;

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use aio_core::FdHandler;
use aio_core::testing::{Count, DropProbe, Fault};
use common::{Ev, Kind, Rig, reader, still_works};

const ERRNOS: [i32; 4] = [libc::EINTR, libc::EAGAIN, libc::ENOMEM, libc::EBADF];

/// Adding, replacing and removing a handler each fail once with each errno:
/// the error reaches the caller, nothing changes (the old handler keeps
/// running, the refused one is dropped unrun), and the next try works.
fn update_errors_reach_the_caller(kind: Kind) {
    for errno in ERRNOS {
        let rig = Rig::new(kind);
        let ev = Rc::new(rig.event());
        let (old_runs, old_drops) = (Count::new(), Count::new());
        let (new_runs, new_drops) = (Count::new(), Count::new());

        rig.faults.on_update(0, Fault::Error(errno));
        let err = rig
            .ctx
            .set_fd_handler(&*ev, Some(reader(&ev, &old_runs, &old_drops)))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(errno), "add: {err}");
        assert_eq!(old_drops.get(), 1, "a refused handler is dropped");
        assert_eq!(rig.ctx.handler_count(), 0);
        assert_eq!(rig.faults.held(), 1);

        let (old_runs, old_drops) = (Count::new(), Count::new());
        rig.ctx
            .set_fd_handler(&*ev, Some(reader(&ev, &old_runs, &old_drops)))
            .unwrap();

        rig.faults.on_update(0, Fault::Error(errno));
        let err = rig
            .ctx
            .set_fd_handler(&*ev, Some(reader(&ev, &new_runs, &new_drops)))
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(errno), "replace: {err}");
        assert_eq!(new_drops.get(), 1);
        ev.set();
        assert!(rig.ctx.poll(false).unwrap());
        assert_eq!(
            (old_runs.get(), new_runs.get()),
            (1, 0),
            "the old handler stays"
        );

        rig.faults.on_update(0, Fault::Error(errno));
        let err = rig.ctx.set_fd_handler(&*ev, None).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(errno), "remove: {err}");
        assert_eq!(
            rig.ctx.handler_count(),
            1,
            "a failed removal keeps the handler"
        );
        ev.set();
        assert!(rig.ctx.poll(false).unwrap());
        assert_eq!(old_runs.get(), 2);
        assert_eq!(old_drops.get(), 0);

        rig.ctx.set_fd_handler(&*ev, None).unwrap();
        assert_eq!(old_drops.get(), 1);
        ev.set();
        rig.ctx.poll(false).unwrap();
        assert_eq!(old_runs.get(), 2, "a removed handler ran");
        assert_eq!(rig.faults.injected(), 3);
        still_works(&rig);
    }
}

/// A wait that fails with each errno: `poll` returns the error and
/// dispatches nothing; the ready fd, the scheduled bottom half and the
/// expired timer are all served by the next `poll`, once.
fn wait_errors_reach_the_caller(kind: Kind) {
    for errno in ERRNOS {
        for blocking in [false, true] {
            let rig = Rig::new(kind);
            let ev = Rc::new(rig.event());
            let (runs, drops) = (Count::new(), Count::new());
            rig.ctx
                .set_fd_handler(&*ev, Some(reader(&ev, &runs, &drops)))
                .unwrap();
            let (bh_runs, timer_runs) = (Count::new(), Count::new());
            let (b, t) = (bh_runs.clone(), timer_runs.clone());
            let bh = rig.ctx.bh(move |_| b.hit());
            let timer = rig.ctx.timer(move |_| t.hit());
            ev.set();
            timer.arm_at_ns(0);
            if !blocking {
                bh.schedule();
            }
            rig.faults.on_wait(0, Fault::Error(errno));
            let err = rig.ctx.poll(blocking).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(errno), "{err}");
            assert_eq!(rig.faults.injected(), 1);
            assert_eq!(
                (runs.get(), bh_runs.get(), timer_runs.get()),
                (0, 0, 0),
                "something was dispatched by a failed poll"
            );
            assert!(rig.ctx.poll(false).unwrap());
            assert_eq!(runs.get(), 1);
            assert_eq!(bh_runs.get(), usize::from(!blocking));
            assert_eq!(timer_runs.get(), 1);
            rig.ctx.set_fd_handler(&*ev, None).unwrap();
            assert_eq!(drops.get(), 1);
            still_works(&rig);
        }
    }
}

/// A wait reports every registration ready although none is: the read
/// callbacks run once (callbacks must cope with a spurious wake-up, as
/// with poll(2)), a removed handler does not, and the next wait is honest.
fn spurious_readiness(kind: Kind) {
    let rig = Rig::new(kind);
    let (a, gone) = (Rc::new(rig.event()), Rc::new(rig.event()));
    let (runs, drops, gone_runs, gone_drops) =
        (Count::new(), Count::new(), Count::new(), Count::new());
    rig.ctx
        .set_fd_handler(&*a, Some(reader(&a, &runs, &drops)))
        .unwrap();
    rig.ctx
        .set_fd_handler(&*gone, Some(reader(&gone, &gone_runs, &gone_drops)))
        .unwrap();
    rig.ctx.set_fd_handler(&*gone, None).unwrap();
    assert_eq!(gone_drops.get(), 1);
    rig.faults.on_wait(0, Fault::Spurious);
    assert!(rig.ctx.poll(false).unwrap());
    assert_eq!(runs.get(), 1);
    assert!(
        !rig.ctx.poll(false).unwrap(),
        "readiness that is not there stayed"
    );
    assert_eq!((runs.get(), gone_runs.get()), (1, 0));
    rig.ctx.set_fd_handler(&*a, None).unwrap();
    assert_eq!(drops.get(), 1);
    still_works(&rig);
}

/// Every event of a wait is reported twice: each handler runs once.
fn duplicate_events(kind: Kind) {
    let rig = Rig::new(kind);
    let (a, b) = (Rc::new(rig.event()), Rc::new(rig.event()));
    let (a_runs, b_runs, drops) = (Count::new(), Count::new(), Count::new());
    rig.ctx
        .set_fd_handler(&*a, Some(reader(&a, &a_runs, &drops)))
        .unwrap();
    rig.ctx
        .set_fd_handler(&*b, Some(reader(&b, &b_runs, &drops)))
        .unwrap();
    a.set();
    b.set();
    rig.faults.on_wait(0, Fault::Duplicate);
    assert!(rig.ctx.poll(false).unwrap());
    assert_eq!((a_runs.get(), b_runs.get()), (1, 1));
    assert_eq!(rig.faults.injected(), 1);
    drop(rig.ctx.set_fd_handler(&*a, None));
    drop(rig.ctx.set_fd_handler(&*b, None));
    assert_eq!(drops.get(), 2);
    still_works(&rig);
}

/// A wait reports the tokens of a removed handler, of a replaced one, and
/// of a handler whose fd was closed and whose number now belongs to a new
/// fd with a new handler: no callback runs for any of them, and the new
/// handlers still get their own events.
fn stale_tokens(kind: Kind) {
    let rig = Rig::new(kind);
    let (removed, replaced) = (Rc::new(rig.event()), Rc::new(rig.event()));
    let (stale_runs, stale_drops) = (Count::new(), Count::new());
    rig.ctx
        .set_fd_handler(&*removed, Some(reader(&removed, &stale_runs, &stale_drops)))
        .unwrap();
    rig.ctx.set_fd_handler(&*removed, None).unwrap();
    rig.ctx
        .set_fd_handler(
            &*replaced,
            Some(reader(&replaced, &stale_runs, &stale_drops)),
        )
        .unwrap();
    let (new_runs, new_drops) = (Count::new(), Count::new());
    rig.ctx
        .set_fd_handler(&*replaced, Some(reader(&replaced, &new_runs, &new_drops)))
        .unwrap();
    // Closed before its handler is removed; the number is then reused.
    let closed = rig.event();
    let number = closed.as_raw_fd();
    rig.ctx
        .set_fd_handler(
            &closed,
            Some(FdHandler::new().on_read(|_| panic!("closed fd's handler"))),
        )
        .unwrap();
    drop(closed);
    rig.ctx.set_fd_handler(number, None).unwrap();
    let reused = Rc::new(rig.event());
    let (reused_runs, reused_drops) = (Count::new(), Count::new());
    rig.ctx
        .set_fd_handler(&*reused, Some(reader(&reused, &reused_runs, &reused_drops)))
        .unwrap();
    assert_eq!(stale_drops.get(), 2);

    rig.faults.on_wait(0, Fault::Stale);
    assert!(
        !rig.ctx.poll(false).unwrap(),
        "a stale token was dispatched"
    );
    assert_eq!(
        (stale_runs.get(), new_runs.get(), reused_runs.get()),
        (0, 0, 0)
    );

    replaced.set();
    reused.set();
    rig.faults.on_wait(0, Fault::Stale);
    assert!(rig.ctx.poll(false).unwrap());
    assert_eq!(
        (stale_runs.get(), new_runs.get(), reused_runs.get()),
        (0, 1, 1)
    );
    rig.ctx.set_fd_handler(&*replaced, None).unwrap();
    rig.ctx.set_fd_handler(&*reused, None).unwrap();
    assert_eq!((new_drops.get(), reused_drops.get()), (1, 1));
    still_works(&rig);
}

/// Faults on every call of a long run of adds, removes and waits (a fault
/// every third update and every other wait): whatever fails, the monitor
/// ends up holding exactly what the context registered, every callback is
/// dropped once, and no removed handler ever runs.
fn faults_everywhere_lose_and_leak_nothing(kind: Kind) {
    let rig = Rig::new(kind);
    let evs: Vec<Rc<Ev>> = (0..4).map(|_| Rc::new(rig.event())).collect();
    // The live flag of each fd's current handler: cleared when it is
    // removed or replaced, checked by the handler when it runs.
    let mut current: Vec<Option<Rc<Cell<bool>>>> = vec![None; evs.len()];
    let (made, drops) = (Count::new(), Count::new());
    let faults = [
        Fault::Error(libc::ENOMEM),
        Fault::Spurious,
        Fault::Error(libc::EINTR),
        Fault::Duplicate,
        Fault::Stale,
        Fault::Error(libc::EAGAIN),
        Fault::Error(libc::EBADF),
    ];
    for round in 0..210 {
        let i = round % evs.len();
        let fault = faults[round % faults.len()];
        if round.is_multiple_of(3) && matches!(fault, Fault::Error(_)) {
            rig.faults.on_update(0, fault);
        }
        if round.is_multiple_of(2) {
            rig.faults.on_wait(0, fault);
        }
        let ev = &evs[i];
        if round % 5 == 4 {
            if rig.ctx.set_fd_handler(&**ev, None).is_ok()
                && let Some(old) = current[i].take()
            {
                old.set(false);
            }
        } else {
            made.hit();
            let alive = Rc::new(Cell::new(true));
            let (e, probe, a) = (Rc::clone(ev), DropProbe::new(&drops), Rc::clone(&alive));
            let handler = FdHandler::new().on_read(move |_| {
                let _ = &probe;
                assert!(a.get(), "a removed or replaced handler ran");
                e.clear();
            });
            if rig.ctx.set_fd_handler(&**ev, Some(handler)).is_ok()
                && let Some(old) = current[i].replace(alive)
            {
                old.set(false);
            }
        }
        ev.set();
        let _ = rig.ctx.poll(false);
        assert_eq!(rig.faults.held(), rig.expected_held(), "round {round}");
    }
    rig.faults.clear();
    for ev in &evs {
        rig.ctx.set_fd_handler(&**ev, None).unwrap();
    }
    assert_eq!(drops.get(), made.get(), "a callback was leaked");
    still_works(&rig);
}

/// Regression: `disable_external` that the monitor refused for one fd left
/// the count raised while the monitor kept watching; the next
/// `enable_external` then failed and dropped the handler, and the monitor
/// leaked its registration. Disabling is all or nothing now.
fn refused_disable_external_changes_nothing(kind: Kind) {
    let rig = Rig::new(kind);
    let evs: Vec<Rc<Ev>> = (0..3).map(|_| Rc::new(rig.event())).collect();
    let (runs, drops) = (Count::new(), Count::new());
    for ev in &evs {
        let handler = reader(ev, &runs, &drops).external(true);
        rig.ctx.set_fd_handler(&**ev, Some(handler)).unwrap();
    }
    rig.faults.on_update(1, Fault::Error(libc::ENOMEM));
    let err = rig.ctx.disable_external().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::OutOfMemory, "{err}");
    assert!(!rig.ctx.is_external_disabled(), "the count did not move");
    assert_eq!(
        rig.faults.held(),
        rig.expected_held(),
        "every fd is watched again"
    );
    assert!(rig.ctx.enable_external().is_err(), "nothing to enable");
    for ev in &evs {
        ev.set();
    }
    rig.ctx.poll(false).unwrap();
    assert_eq!(runs.get(), 3, "the external handlers still run");
    rig.ctx.disable_external().unwrap();
    rig.ctx.enable_external().unwrap();
    assert_eq!(rig.faults.held(), rig.expected_held());
    assert_eq!(drops.get(), 0);
    still_works(&rig);
}

/// Regression: a context with a fallback monitor moved to it on any wait
/// error, `EINTR` included. A passing error is returned; only a monitor
/// that failed for good is replaced.
mod fallback {
    use super::*;

    fn transient_wait_error_does_not_fall_back(kind: Kind) {
        for errno in [libc::EINTR, libc::EAGAIN] {
            let faults = aio_core::testing::Faults::new();
            let inner = common::open(kind).unwrap();
            let monitor = aio_core::testing::TestMonitor::new(inner).faults(&faults);
            let ctx = aio_core::ContextBuilder::new(Box::new(monitor))
                .fallback("spare", || Ok(Box::new(fdmon_poll::PollMonitor::new())))
                .build()
                .unwrap();
            let fd = aio_core::EventNotifier::new().unwrap();
            ctx.set_fd_handler(&fd, Some(FdHandler::new().on_read(|_| {})))
                .unwrap();
            faults.on_wait(0, Fault::Error(errno));
            let err = ctx.poll(false).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(errno));
            assert_ne!(
                ctx.backend().name,
                "spare",
                "{errno}: fell back on a passing error"
            );
            faults.on_wait(0, Fault::Error(libc::EBADFD));
            assert!(
                ctx.poll(false).is_ok(),
                "a monitor that failed for good is replaced"
            );
            assert_eq!(ctx.backend().name, "spare");
        }
    }

    on_every_monitor!(transient_wait_error_does_not_fall_back);
}

on_every_monitor!(sim:
    refused_disable_external_changes_nothing,
    update_errors_reach_the_caller,
    wait_errors_reach_the_caller,
    spurious_readiness,
    duplicate_events,
    stale_tokens,
    faults_everywhere_lose_and_leak_nothing,
);
