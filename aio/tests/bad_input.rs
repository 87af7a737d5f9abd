//! Bad input on every monitor (poll, epoll, io_uring and the sim): negative
//! and closed fds, an fd number reused after close while a stale
//! registration or an in-flight event exists, the same fd registered twice,
//! removal of unknown fds, timer deadlines of `Duration::MAX` and in the
//! past, extreme polling parameters, and a context dropped with everything
//! still registered. Each is refused with an error or handled, never a
//! panic, a hang, a lost or leaked registration, or a callback for a
//! removed handler. (Running out of fds has its own binary,
//! `fd_exhaustion.rs`, since it lowers the process's fd limit.)

mod common;

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use aio_core::testing::{Count, DropProbe, TestEvent, ThreadProbe};
use aio_core::{EventNotifier, FdHandler, Gone, PollParams, Readiness};
use common::{Kind, Rig, reader, still_works};

fn is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD only reads the fd's flags; on an fd that is not open
    // it fails with EBADF.
    unsafe { libc::fcntl(fd, libc::F_GETFD) >= 0 }
}

/// An fd number that was open and is now closed, and that no other test's
/// thread will take meanwhile: the kernel hands out the lowest free number,
/// so those just below the fd limit stay free, and each call takes one of
/// its own (tests of this file run in parallel threads, and two that
/// shared a number closed each other's duplicate).
fn open_then_closed() -> RawFd {
    static TAKEN: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(1);
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live, exclusively borrowed rlimit for the call.
    let got = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(got, 0, "getrlimit");
    let below = TAKEN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let high = RawFd::try_from(limit.rlim_cur.min(1 << 20)).expect("fd limit") - below;
    let fd = EventNotifier::new().expect("eventfd");
    assert!(!is_open(high), "fd {high} is already open");
    // SAFETY: dup2 onto a number below the limit that nothing here holds
    // (checked above); the duplicate is ours and is closed at once.
    unsafe {
        assert_eq!(libc::dup2(fd.as_raw_fd(), high), high);
        assert_eq!(libc::close(high), 0);
    }
    high
}

/// Negative fds (registration and removal) are `InvalidInput`; fd numbers
/// that are not open are `EBADF`; nothing is registered, and the refused
/// handler is dropped unrun.
fn negative_and_closed_fds_are_refused(kind: Kind) {
    let rig = Rig::new(kind);
    let drops = Count::new();
    let handler = || {
        let probe = DropProbe::new(&drops);
        Some(FdHandler::new().on_read(move |_| {
            let _ = &probe;
            panic!("a refused handler ran");
        }))
    };
    for fd in [-1, -2, RawFd::MIN] {
        let err = rig.ctx.set_fd_handler(fd, handler()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "fd {fd}");
        let err = rig.ctx.set_fd_handler(fd, None).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "removing fd {fd}");
    }
    // Numbers that nothing in this process has open.
    for fd in [RawFd::MAX, RawFd::MAX - 1, 1 << 20] {
        assert!(!is_open(fd));
        let err = rig.ctx.set_fd_handler(fd, handler()).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF), "fd {fd}");
        rig.ctx.set_fd_handler(fd, None).unwrap();
    }
    // A number that was open and is closed.
    let closed = open_then_closed();
    let err = rig.ctx.set_fd_handler(closed, handler()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    assert_eq!(drops.get(), 7, "a refused handler was kept");
    assert_eq!(rig.ctx.handler_count(), 0);
    still_works(&rig);
}

/// A handler's fd is closed while it is registered and ready (on io_uring
/// its poll request is in flight, perhaps completed), and the number is
/// reused by a new fd whose handler replaces the stale registration. The
/// old handler never runs and is dropped once; the new one runs only when
/// its own fd is ready; nothing is lost or leaked. Then the same with the
/// stale registration removed first.
fn fd_number_reused_after_close(kind: Kind) {
    for remove_first in [false, true] {
        let rig = Rig::new(kind);
        let (old_runs, old_drops) = (Count::new(), Count::new());
        let old = rig.event();
        let number = old.as_raw_fd();
        let probe = DropProbe::new(&old_drops);
        let o = old_runs.clone();
        rig.ctx
            .set_fd_handler(
                &old,
                Some(FdHandler::new().on_read(move |_| {
                    let _ = &probe;
                    o.hit();
                })),
            )
            .unwrap();
        rig.ctx.poll(false).unwrap(); // the registration reaches the kernel
        old.set();
        drop(old); // closed before its handler is removed
        if remove_first {
            rig.ctx.set_fd_handler(number, None).unwrap();
            assert_eq!(old_drops.get(), 1);
        }
        let new = Rc::new(rig.event());
        let reused = new.as_raw_fd() == number;
        let (new_runs, new_drops) = (Count::new(), Count::new());
        rig.ctx
            .set_fd_handler(&*new, Some(reader(&new, &new_runs, &new_drops)))
            .unwrap();
        if !reused {
            rig.ctx.set_fd_handler(number, None).unwrap();
        }
        assert_eq!(old_drops.get(), 1, "the stale handler was not dropped once");
        for _ in 0..3 {
            rig.ctx.poll(false).unwrap();
        }
        assert_eq!(
            (old_runs.get(), new_runs.get()),
            (0, 0),
            "an event of the closed fd reached a handler (fd reused: {reused})"
        );
        new.set();
        rig.ctx.poll(false).unwrap();
        assert_eq!(new_runs.get(), 1, "the new registration was lost");
        rig.ctx.set_fd_handler(&*new, None).unwrap();
        assert_eq!(new_drops.get(), 1);
        still_works(&rig);
    }
}

/// The same fd registered again replaces its handler, also with a new
/// interest (read, then write, then read again): the replaced callbacks
/// never run again and are dropped once; one handler, one registration.
fn same_fd_registered_twice_replaces(kind: Kind) {
    let rig = Rig::new(kind);
    let ev = Rc::new(rig.event());
    let (first_runs, first_drops) = (Count::new(), Count::new());
    rig.ctx
        .set_fd_handler(&*ev, Some(reader(&ev, &first_runs, &first_drops)))
        .unwrap();
    let (write_runs, write_drops) = (Count::new(), Count::new());
    let (w, probe) = (write_runs.clone(), DropProbe::new(&write_drops));
    rig.ctx
        .set_fd_handler(
            &*ev,
            Some(FdHandler::new().on_write(move |_| {
                let _ = &probe;
                w.hit();
            })),
        )
        .unwrap();
    assert_eq!(first_drops.get(), 1);
    assert_eq!(rig.ctx.handler_count(), 1);
    ev.set();
    if let Some(world) = &rig.world {
        world.set_ready(ev.as_raw_fd(), Readiness::WRITABLE);
    }
    rig.ctx.poll(false).unwrap();
    assert_eq!(first_runs.get(), 0, "the replaced read handler ran");
    assert_eq!(write_runs.get(), 1, "an eventfd is writable");
    let (last_runs, last_drops) = (Count::new(), Count::new());
    rig.ctx
        .set_fd_handler(&*ev, Some(reader(&ev, &last_runs, &last_drops)))
        .unwrap();
    assert_eq!(write_drops.get(), 1);
    if let Some(world) = &rig.world {
        world.clear(ev.as_raw_fd());
    }
    ev.set();
    rig.ctx.poll(false).unwrap();
    assert_eq!((write_runs.get(), last_runs.get()), (1, 1));
    assert_eq!(rig.faults.held(), 2);
    rig.ctx.set_fd_handler(&*ev, None).unwrap();
    assert_eq!(last_drops.get(), 1);
    still_works(&rig);
}

/// Removing fds that have no handler (open, closed, removed twice) does
/// nothing and succeeds.
fn removing_unknown_fds_does_nothing(kind: Kind) {
    let rig = Rig::new(kind);
    let ev = rig.event();
    let (runs, drops) = (Count::new(), Count::new());
    let kept = Rc::new(rig.event());
    rig.ctx
        .set_fd_handler(&*kept, Some(reader(&kept, &runs, &drops)))
        .unwrap();
    rig.ctx.set_fd_handler(&ev, None).unwrap();
    rig.ctx.set_fd_handler(&ev, None).unwrap();
    rig.ctx.set_fd_handler(1 << 20, None).unwrap();
    let closed = rig.event().as_raw_fd();
    rig.ctx.set_fd_handler(closed, None).unwrap();
    assert_eq!(rig.ctx.handler_count(), 1);
    kept.set();
    rig.ctx.poll(false).unwrap();
    assert_eq!(runs.get(), 1, "the other handler was disturbed");
    assert_eq!(drops.get(), 0);
    still_works(&rig);
}

/// A timer armed for `Duration::MAX` (and for `u64::MAX` ns) never fires,
/// and a blocking `poll` with it as the nearest deadline blocks without an
/// error until it is woken (the far timeout reaches the kernel in range);
/// deadlines in the past, zero and now fire at the next iteration, once.
fn timer_deadlines_at_the_extremes(kind: Kind) {
    let _watchdog = common::watchdog("timer_deadlines_at_the_extremes", Duration::from_secs(60));
    let f = common::harness(kind).fixture();
    let fired = Count::new();
    let timer = |count: &Count| {
        let c = count.clone();
        f.ctx.timer(move |_| c.hit())
    };
    let never = Count::new();
    let far = timer(&never);
    far.arm_in(Duration::MAX);
    let farthest = timer(&never);
    farthest.arm_at_ns(u64::MAX);
    assert!(!f.ctx.poll(false).unwrap());

    let (remote, notified) = (f.ctx.remote(), Arc::new(AtomicBool::new(false)));
    let n = Arc::clone(&notified);
    let home = ThreadProbe::current();
    let waker = thread::spawn(move || {
        home.wait_until_blocked();
        n.store(true, Ordering::SeqCst);
        remote.notify();
    });
    assert!(
        !f.ctx.poll(true).unwrap(),
        "woken by notify, no timer fired"
    );
    assert!(
        notified.load(Ordering::SeqCst),
        "returned before the notification: the far deadline did not block"
    );
    waker.join().unwrap();

    let past = [timer(&fired), timer(&fired), timer(&fired)];
    past[0].arm_at_ns(0);
    past[1].arm_in(Duration::ZERO);
    past[2].arm_at_ns(f.ctx.now_ns());
    let start = Instant::now();
    f.ctx.poll(true).unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "a past deadline blocked"
    );
    f.ctx.poll(false).unwrap();
    assert_eq!(fired.get(), 3);
    assert_eq!(never.get(), 0);
    assert!(far.is_armed() && farthest.is_armed());
    assert_eq!(farthest.deadline_ns(), Some(u64::MAX));
}

/// A polled handler: its `poll` callback reports the work that `ev.set()`
/// plus `work.set(true)` announce (the contract of a `poll` callback: it
/// sees the work of its fd), so the loop busy-polls it.
fn polled(f: &aio_core::testing::Fixture, ev: &Rc<TestEvent>, work: &Rc<Cell<bool>>, runs: &Count) {
    let serve = {
        let (e, w, r) = (Rc::clone(ev), Rc::clone(work), runs.clone());
        move || {
            // Read callback and poll_ready may both run for one piece of
            // work (fd readiness and the poll hit): count the work once.
            if e.clear() | w.replace(false) {
                r.hit();
            }
        }
    };
    let serve2 = serve.clone();
    let w = Rc::clone(work);
    let handler = FdHandler::new()
        .on_read(move |_| serve())
        .on_poll(move || w.get(), move |_| serve2());
    f.ctx.set_fd_handler(&**ev, Some(handler)).unwrap();
}

/// Polling parameters at their extremes (grow 1, shrink 0, `max_ns =
/// u64::MAX`, a factor of `u64::MAX`): no overflow, the poll time stays
/// where grow 1 keeps it, a busy-poll window is still bounded by the
/// nearest timer, and a notify from another thread ends a window that
/// nothing else bounds.
fn poll_params_at_the_extremes(kind: Kind) {
    let _watchdog = common::watchdog("poll_params_at_the_extremes", Duration::from_secs(60));
    let f = common::harness(kind).fixture();
    let ev = Rc::new(f.event());
    let (runs, work) = (Count::new(), Rc::new(Cell::new(false)));
    polled(&f, &ev, &work, &runs);
    for params in [
        PollParams {
            max_ns: u64::MAX,
            grow: 1,
            shrink: 0,
        },
        PollParams {
            max_ns: u64::MAX,
            grow: u64::MAX,
            shrink: 0,
        },
        PollParams {
            max_ns: u64::MAX,
            grow: 0,
            shrink: u64::MAX,
        },
    ] {
        f.ctx.set_poll_params(params);
        assert_eq!(f.ctx.poll_params(), params);
        let before = runs.get();
        for _ in 0..5 {
            ev.set();
            work.set(true);
            f.ctx.poll(true).unwrap();
        }
        assert_eq!(runs.get(), before + 5);
        if params.grow == 1 {
            assert!(
                f.ctx.poll_time(&*ev).unwrap_or_default() <= Duration::from_micros(4),
                "grow 1 must keep the poll time: {:?}",
                f.ctx.poll_time(&*ev)
            );
        }
        // The window is bounded by the nearest timer.
        let fired = Count::new();
        let c = fired.clone();
        let timer = f.ctx.timer(move |_| c.hit());
        timer.arm_in(Duration::from_millis(2));
        let start = Instant::now();
        while fired.get() == 0 {
            f.ctx.poll(true).unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(10));
        // Nothing bounds the window but a notification: they come until the
        // poll returns, so some come while the window runs.
        let (remote, returned) = (f.ctx.remote(), Arc::new(AtomicBool::new(false)));
        let r = Arc::clone(&returned);
        let waker = thread::spawn(move || {
            while !r.load(Ordering::SeqCst) {
                remote.notify();
                thread::yield_now();
            }
        });
        f.ctx.poll(true).unwrap();
        returned.store(true, Ordering::SeqCst);
        waker.join().unwrap();
    }
}

/// A context dropped with handlers (ready), timers (expired), scheduled
/// bottom halves (home and remote) and remote closures still registered:
/// every callback is dropped once, none runs, the user's fds stay open, and
/// handles that outlive it report it.
fn context_dropped_with_everything_registered(kind: Kind) {
    let f = common::harness(kind).fixture();
    let (runs, drops) = (Count::new(), Count::new());
    let counted = |runs: &Count, drops: &Count| {
        let (r, p) = (runs.clone(), DropProbe::new(drops));
        move |_: &aio_core::AioContext| {
            let _ = &p;
            r.hit();
        }
    };
    let evs: Vec<TestEvent> = (0..3).map(|_| f.event()).collect();
    for ev in &evs {
        f.ctx
            .set_fd_handler(ev, Some(FdHandler::new().on_read(counted(&runs, &drops))))
            .unwrap();
        ev.set();
    }
    f.ctx.poll(false).unwrap(); // registrations reach the kernel
    let before = runs.get();
    for ev in &evs {
        ev.set();
    }
    let bhs: Vec<_> = (0..3).map(|_| f.ctx.bh(counted(&runs, &drops))).collect();
    for bh in &bhs {
        bh.schedule();
    }
    let remote_bh = bhs[0].remote();
    let timers: Vec<_> = (0..3)
        .map(|_| f.ctx.timer(counted(&runs, &drops)))
        .collect();
    for t in &timers {
        t.arm_at_ns(0);
    }
    f.ctx.schedule_oneshot(counted(&runs, &drops));
    let remote = f.ctx.remote();
    let remote_drops = Arc::new(AtomicUsize::new(0));
    struct SendProbe(Arc<AtomicUsize>);
    impl Drop for SendProbe {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    for _ in 0..3 {
        let p = SendProbe(Arc::clone(&remote_drops));
        remote
            .schedule(move |_| {
                let _ = &p;
                panic!("a job of a dropped context ran");
            })
            .unwrap();
    }
    let fds: Vec<RawFd> = evs.iter().map(AsRawFd::as_raw_fd).collect();
    drop(f);
    assert_eq!(
        runs.get(),
        before,
        "something ran while the context was dropped"
    );
    assert_eq!(drops.get(), 3 + 3 + 3 + 1, "every callback is dropped");
    assert_eq!(remote_drops.load(Ordering::SeqCst), 3);
    assert!(
        fds.iter().all(|&fd| is_open(fd)),
        "the context closed a user's fd"
    );
    assert_eq!(remote.schedule(|_| {}), Err(Gone::Context));
    assert_eq!(remote_bh.schedule(), Err(Gone::Context));
    remote.notify();
    drop((bhs, timers));
    assert_eq!(drops.get(), 10, "and only once");
}

on_every_monitor!(sim:
    negative_and_closed_fds_are_refused,
    fd_number_reused_after_close,
    same_fd_registered_twice_replaces,
    removing_unknown_fds_does_nothing,
    timer_deadlines_at_the_extremes,
    poll_params_at_the_extremes,
    context_dropped_with_everything_registered,
);
