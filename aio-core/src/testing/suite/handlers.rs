//! fd handlers: removal and replacement from callbacks, nested `poll`,
//! stale tokens, external handlers.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::time::Duration;

use crate::testing::{Count, DropProbe, Harness, TestEvent, clearing};
use crate::{FdHandler, Interest, Readiness};

/// A handler removes itself from its read callback: it runs once, is never
/// called again, and its callbacks are dropped once `poll` returns.
pub fn handler_removes_itself(h: &Harness) {
    let f = h.fixture();
    let ev = Rc::new(f.event());
    let (runs, drops) = (Count::new(), Count::new());
    let dropped_inside = Rc::new(Cell::new(usize::MAX));
    let (r, d, inside, probe, fd) = (
        runs.clone(),
        drops.clone(),
        Rc::clone(&dropped_inside),
        DropProbe::new(&drops),
        ev.as_raw_fd(),
    );
    f.ctx
        .set_fd_handler(
            fd,
            Some(FdHandler::new().on_read(move |ctx| {
                let _ = &probe;
                r.hit();
                ctx.set_fd_handler(fd, None).unwrap();
                inside.set(d.get());
            })),
        )
        .unwrap();
    ev.set();
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!(
        dropped_inside.get(),
        0,
        "not dropped while its callback runs"
    );
    assert_eq!(drops.get(), 1, "dropped once poll returned");
    assert!(
        !f.ctx.poll(false).unwrap(),
        "the fd is still readable, but has no handler"
    );
    assert_eq!(runs.get(), 1);
    assert_eq!(f.ctx.handler_count(), 0);
}

/// Two handlers are ready in one iteration; whichever runs first removes
/// the other, which then must not run.
pub fn handler_removes_other_ready_handler(h: &Harness) {
    let f = h.fixture();
    let (a, b) = (Rc::new(f.event()), Rc::new(f.event()));
    let runs = Count::new();
    let drops = Count::new();
    for (me, other) in [(&a, &b), (&b, &a)] {
        let (r, other_fd, probe) = (runs.clone(), other.as_raw_fd(), DropProbe::new(&drops));
        f.ctx
            .set_fd_handler(
                me.as_raw_fd(),
                Some(FdHandler::new().on_read(move |ctx| {
                    let _ = &probe;
                    r.hit();
                    ctx.set_fd_handler(other_fd, None).unwrap();
                })),
            )
            .unwrap();
    }
    a.set();
    b.set();
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!(runs.get(), 1, "the removed handler did not run");
    assert_eq!(drops.get(), 1);
    assert_eq!(f.ctx.handler_count(), 1);
}

/// A handler replaces itself: the new callbacks run from the next
/// iteration on, the old ones never again.
pub fn handler_replaces_itself(h: &Harness) {
    let f = h.fixture();
    let ev = Rc::new(f.event());
    let (old_runs, new_runs, old_drops) = (Count::new(), Count::new(), Count::new());
    let (o, n, e, probe) = (
        old_runs.clone(),
        new_runs.clone(),
        Rc::clone(&ev),
        DropProbe::new(&old_drops),
    );
    f.ctx
        .set_fd_handler(
            &*ev,
            Some(FdHandler::new().on_read(move |ctx| {
                let _ = &probe;
                o.hit();
                let (n, e2) = (n.clone(), Rc::clone(&e));
                let replacement = FdHandler::new().on_read(move |_| {
                    e2.clear();
                    n.hit();
                });
                ctx.set_fd_handler(&*e, Some(replacement)).unwrap();
            })),
        )
        .unwrap();
    ev.set();
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!((old_runs.get(), new_runs.get(), old_drops.get()), (1, 0, 1));
    assert!(f.ctx.poll(false).unwrap(), "the fd is still readable");
    assert_eq!((old_runs.get(), new_runs.get()), (1, 1));
    assert_eq!(f.ctx.handler_count(), 1);
    f.ctx.set_fd_handler(&*ev, None).unwrap();
}

/// `poll` called [`MAX_NESTING`](crate::MAX_NESTING) levels deep returns an
/// error instead of recursing, and the levels above it, and the context
/// afterwards, go on as usual.
pub fn poll_nested_past_the_limit_is_refused(h: &Harness) {
    let f = h.fixture();
    let deepest = Rc::new(Cell::new(0));
    let refusal = Rc::new(RefCell::new(None));
    nest(&f.ctx, 1, &deepest, &refusal);
    f.poll(false).unwrap();
    assert_eq!(
        deepest.get(),
        crate::MAX_NESTING,
        "every level up to the limit ran"
    );
    let e = refusal
        .borrow_mut()
        .take()
        .expect("the poll past the limit was refused");
    assert!(e.to_string().contains("MAX_NESTING"), "{e}");
    let runs = Count::new();
    let r = runs.clone();
    f.ctx.schedule_oneshot(move |_| r.hit());
    f.poll(false).unwrap();
    assert_eq!(runs.get(), 1, "the context still works");
}

/// Schedules a job that, at nesting level `level`, schedules the next one and
/// runs it in a nested `poll`, until a `poll` is refused.
fn nest(
    ctx: &crate::AioContext,
    level: u32,
    deepest: &Rc<Cell<u32>>,
    refusal: &Rc<RefCell<Option<std::io::Error>>>,
) {
    let (deepest, refusal) = (Rc::clone(deepest), Rc::clone(refusal));
    ctx.schedule_oneshot(move |ctx| {
        if refusal.borrow().is_some() {
            return;
        }
        deepest.set(level);
        nest(ctx, level + 1, &deepest, &refusal);
        if let Err(e) = ctx.poll(false) {
            *refusal.borrow_mut() = Some(e);
        }
    });
}

/// [`set_fd_interest`](crate::AioContext::set_fd_interest) turns a
/// direction off and on: off, it is not served; on again, it is, by the
/// same callbacks, which are neither dropped nor rebuilt; a write callback
/// can turn its own direction off.
pub fn interest_change_keeps_the_callbacks(h: &Harness) {
    let f = h.fixture();
    let ev = Rc::new(f.event());
    let fd = ev.as_raw_fd();
    // An eventfd is writable; the sim's fd, once it is made so (and again
    // after the read callback's clear).
    let writable = || {
        if let Some(world) = f.world() {
            world.set_ready(fd, Readiness::WRITABLE);
        }
    };
    writable();
    let (reads, writes, drops) = (Count::new(), Count::new(), Count::new());
    let (r, w, e, probe) = (
        reads.clone(),
        writes.clone(),
        Rc::clone(&ev),
        DropProbe::new(&drops),
    );
    let handler = FdHandler::new()
        .on_read(move |_| {
            let _ = &probe;
            e.clear();
            r.hit();
        })
        .on_write(move |ctx| {
            w.hit();
            ctx.set_fd_interest(fd, Interest::READABLE).unwrap();
        });
    f.ctx.set_fd_handler(fd, Some(handler)).unwrap();
    f.poll(false).unwrap();
    f.poll(false).unwrap();
    assert_eq!(writes.get(), 1, "the write callback turned itself off");

    ev.set();
    f.poll(false).unwrap();
    assert_eq!(reads.get(), 1, "read interest on: served");

    f.ctx.set_fd_interest(fd, Interest::WRITABLE).unwrap();
    ev.set();
    writable();
    f.poll(false).unwrap();
    assert_eq!(
        (reads.get(), writes.get()),
        (1, 2),
        "read interest off: the readable fd is not read"
    );
    f.poll(false).unwrap();
    assert_eq!(
        reads.get(),
        2,
        "read interest back on: the same callback reads"
    );
    assert_eq!(drops.get(), 0, "the callbacks were kept");
    f.ctx.set_fd_handler(fd, None).unwrap();
    f.poll(false).unwrap();
    assert_eq!(drops.get(), 1, "removal drops them");
}

/// [`set_fd_interest`](crate::AioContext::set_fd_interest) refuses an fd
/// without a handler (`NotFound`) and a direction the handler has no
/// callback for (`InvalidInput`), changing nothing; `Interest::NONE` stops
/// watching the fd without removing its handler.
pub fn interest_change_refuses_bad_input(h: &Harness) {
    let f = h.fixture();
    let (ev, unregistered) = (Rc::new(f.event()), f.event());
    let reads = Count::new();
    let (r, e) = (reads.clone(), Rc::clone(&ev));
    let reader = FdHandler::new().on_read(move |_| {
        e.clear();
        r.hit();
    });
    f.ctx.set_fd_handler(&*ev, Some(reader)).unwrap();
    let kind = |interest, fd: RawFd| f.ctx.set_fd_interest(fd, interest).unwrap_err().kind();
    assert_eq!(
        kind(Interest::READABLE, unregistered.as_raw_fd()),
        std::io::ErrorKind::NotFound
    );
    assert_eq!(
        kind(Interest::WRITABLE, ev.as_raw_fd()),
        std::io::ErrorKind::InvalidInput
    );
    assert_eq!(
        kind(Interest::BOTH, ev.as_raw_fd()),
        std::io::ErrorKind::InvalidInput
    );
    ev.set();
    f.poll(false).unwrap();
    assert_eq!(reads.get(), 1, "the refusals changed nothing");

    f.ctx.set_fd_interest(&*ev, Interest::NONE).unwrap();
    ev.set();
    f.poll(false).unwrap();
    assert_eq!(reads.get(), 1, "not watched");
    assert_eq!(f.ctx.handler_count(), 1, "but still registered");
    f.ctx.set_fd_interest(&*ev, Interest::READABLE).unwrap();
    f.poll(false).unwrap();
    assert_eq!(reads.get(), 2, "watched again, and the readiness is seen");
}

/// A read callback learns from [`readiness`](crate::AioContext::readiness)
/// whether it runs for data or for a hang-up; outside fd callbacks there
/// is none.
pub fn callbacks_see_the_readiness(h: &Harness) {
    let f = h.fixture();
    let (rd, wr) = rustix::pipe::pipe().expect("a pipe");
    let fd = rd.as_raw_fd();
    let rd = Rc::new(rd);
    let world = f.world().cloned();
    let seen = Rc::new(RefCell::new(Vec::new()));
    let (s, r, w) = (Rc::clone(&seen), Rc::clone(&rd), world.clone());
    let reader = FdHandler::new().on_read(move |ctx| {
        let readiness = ctx.readiness();
        s.borrow_mut().push(readiness);
        if readiness.contains(Readiness::HANGUP) {
            ctx.set_fd_handler(fd, None).unwrap();
        } else if let Some(world) = &w {
            world.clear(fd);
        } else {
            rustix::io::read(&*r, &mut [0; 1]).expect("the byte written");
        }
    });
    f.ctx.set_fd_handler(fd, Some(reader)).unwrap();
    match &world {
        Some(world) => world.set_ready(fd, Readiness::READABLE),
        None => assert_eq!(rustix::io::write(&wr, b"x"), Ok(1)),
    }
    f.poll(false).unwrap();
    match &world {
        Some(world) => world.set_ready(fd, Readiness::HANGUP),
        None => drop(wr),
    }
    f.poll(false).unwrap();
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].contains(Readiness::READABLE) && !seen[0].contains(Readiness::HANGUP),
        "data: {:?}",
        seen[0]
    );
    assert!(
        seen[1].contains(Readiness::HANGUP),
        "hang-up: {:?}",
        seen[1]
    );
    assert_eq!(f.ctx.readiness(), Readiness::EMPTY, "outside callbacks");
}

/// [`stale_fds`](crate::AioContext::stale_fds) names the fds closed while
/// their handler was registered, and those whose number now names another
/// file; removing their handlers still works and empties the list.
pub fn fds_closed_while_registered_are_reported(h: &Harness) {
    let f = h.fixture();
    let handler = || Some(FdHandler::new().on_read(|_| {}));
    let (mut reused, _wa) = rustix::pipe::pipe().expect("a pipe");
    let (closed, _wc) = rustix::pipe::pipe().expect("a pipe");
    let (other, _wo) = rustix::pipe::pipe().expect("a pipe");
    let (reused_fd, closed_fd) = (reused.as_raw_fd(), closed.as_raw_fd());
    f.ctx.set_fd_handler(reused_fd, handler()).unwrap();
    f.ctx.set_fd_handler(closed_fd, handler()).unwrap();
    f.ctx.set_fd_handler(&other, handler()).unwrap();
    assert_eq!(f.ctx.stale_fds(), [], "all open");

    rustix::io::dup2(&other, &mut reused).expect("dup2");
    drop(closed);
    let mut stale = f.ctx.stale_fds();
    stale.sort_unstable();
    let mut expected = vec![reused_fd, closed_fd];
    expected.sort_unstable();
    assert_eq!(stale, expected);
    f.ctx.set_fd_handler(reused_fd, None).unwrap();
    f.ctx.set_fd_handler(closed_fd, None).unwrap();
    assert_eq!(f.ctx.stale_fds(), []);
    assert!(!f.poll(false).unwrap(), "the context still works");
}

/// A callback calls `poll` recursively: other ready handlers run in the
/// nested call, the running one is not re-entered, and a handler removed
/// in the nested call is dropped only when the outermost `poll` returns.
pub fn nested_poll_from_callback(h: &Harness) {
    let f = h.fixture();
    let (outer, other, victim) = (Rc::new(f.event()), Rc::new(f.event()), Rc::new(f.event()));
    let (outer_runs, other_runs, victim_drops) = (Count::new(), Count::new(), Count::new());
    let seen = Rc::new(RefCell::new(None));

    let probe = DropProbe::new(&victim_drops);
    f.ctx
        .set_fd_handler(
            &*victim,
            Some(FdHandler::new().on_read(move |_| {
                let _ = &probe;
            })),
        )
        .unwrap();
    let (o, victim_fd, ev) = (other_runs.clone(), victim.as_raw_fd(), Rc::clone(&other));
    f.ctx
        .set_fd_handler(
            &*other,
            Some(FdHandler::new().on_read(move |ctx| {
                ev.clear();
                o.hit();
                ctx.set_fd_handler(victim_fd, None).unwrap();
            })),
        )
        .unwrap();
    let (r, ev, other_count, drops, seen_inner) = (
        outer_runs.clone(),
        Rc::clone(&other),
        other_runs.clone(),
        victim_drops.clone(),
        Rc::clone(&seen),
    );
    f.ctx
        .set_fd_handler(
            &*outer,
            Some(FdHandler::new().on_read(move |ctx| {
                r.hit();
                ev.set();
                // `outer` is still readable: the nested call must not call
                // this callback again.
                ctx.poll(false).unwrap();
                *seen_inner.borrow_mut() = Some((r.get(), other_count.get(), drops.get()));
            })),
        )
        .unwrap();
    outer.set();
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!(
        *seen.borrow(),
        Some((1, 1, 0)),
        "(outer runs, other runs, victim drops) inside the nested call"
    );
    assert_eq!(
        victim_drops.get(),
        1,
        "freed when the outermost poll returned"
    );
    assert_eq!(other_runs.get(), 1);
    outer.clear();
    f.ctx.set_fd_handler(&*outer, None).unwrap();
    f.ctx.set_fd_handler(&*other, None).unwrap();
}

/// Readiness seen for a handler that was removed and replaced on the same
/// fd in the same iteration is dropped: it never reaches the newcomer,
/// which sees the fd only in the next iteration.
pub fn stale_event_never_reaches_new_handler(h: &Harness) {
    let f = h.fixture();
    let (a, b) = (Rc::new(f.event()), Rc::new(f.event()));
    let (old_runs, new_runs) = (Count::new(), Count::new());
    let b_fd = b.as_raw_fd();
    let (n, ev_b) = (new_runs.clone(), Rc::clone(&b));
    let newcomer = RefCell::new(Some(FdHandler::new().on_read(move |_| {
        ev_b.clear();
        n.hit();
    })));
    let o = old_runs.clone();
    // Both handlers remove-and-replace b's handler; whichever runs first
    // does it, and b's old event is then stale.
    let swap_b = Rc::new(move |ctx: &crate::AioContext| {
        if let Some(handler) = newcomer.borrow_mut().take() {
            ctx.set_fd_handler(b_fd, None).unwrap();
            ctx.set_fd_handler(b_fd, Some(handler)).unwrap();
        }
    });
    let s = Rc::clone(&swap_b);
    f.ctx
        .set_fd_handler(&*a, Some(FdHandler::new().on_read(move |ctx| s(ctx))))
        .unwrap();
    let s = Rc::clone(&swap_b);
    f.ctx
        .set_fd_handler(
            b_fd,
            Some(FdHandler::new().on_read(move |ctx| {
                o.hit();
                s(ctx);
            })),
        )
        .unwrap();
    a.set();
    b.set();
    f.ctx.poll(false).unwrap();
    assert_eq!(
        new_runs.get(),
        0,
        "the old registration's event was delivered to the new handler"
    );
    assert!(old_runs.get() <= 1);
    a.clear();
    f.ctx.poll(false).unwrap();
    assert_eq!(
        new_runs.get(),
        1,
        "the newcomer sees the fd in the next iteration"
    );
}

fn counting(ev: &Rc<TestEvent>, runs: &Count, external: bool) -> FdHandler {
    clearing(ev, runs).external(external)
}

/// External handlers do not run while disabled (nesting counts) and run
/// again once enabled; internal ones run throughout.
pub fn external_handlers_held_back_while_disabled(h: &Harness) {
    let f = h.fixture();
    let (ext, int) = (Rc::new(f.event()), Rc::new(f.event()));
    let (ext_runs, int_runs) = (Count::new(), Count::new());
    f.ctx
        .set_fd_handler(&*ext, Some(counting(&ext, &ext_runs, true)))
        .unwrap();
    f.ctx
        .set_fd_handler(&*int, Some(counting(&int, &int_runs, false)))
        .unwrap();
    f.ctx.disable_external().unwrap();
    f.ctx.disable_external().unwrap();
    ext.set();
    int.set();
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!((ext_runs.get(), int_runs.get()), (0, 1));
    f.ctx.enable_external().unwrap();
    assert!(!f.ctx.poll(false).unwrap(), "still disabled once");
    assert_eq!(ext_runs.get(), 0);
    f.ctx.enable_external().unwrap();
    assert!(
        f.ctx.enable_external().is_err(),
        "unbalanced enable is an error"
    );
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!(ext_runs.get(), 1);
    // An external handler registered while disabled is held back too.
    f.ctx.disable_external().unwrap();
    let late = Rc::new(f.event());
    let late_runs = Count::new();
    f.ctx
        .set_fd_handler(&*late, Some(counting(&late, &late_runs, true)))
        .unwrap();
    late.set();
    assert!(!f.ctx.poll(false).unwrap());
    f.ctx.enable_external().unwrap();
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!(late_runs.get(), 1);
}

/// A readable external fd does not make a blocking `poll` spin while
/// external handlers are disabled: the loop sleeps until its timer, in one
/// wait.
pub fn disabled_external_fd_does_not_spin(h: &Harness) {
    let f = h.fixture_manual();
    let ext = Rc::new(f.event());
    let runs = Count::new();
    f.ctx
        .set_fd_handler(&*ext, Some(counting(&ext, &runs, true)))
        .unwrap();
    f.ctx.disable_external().unwrap();
    ext.set();
    let fired = Count::new();
    let c = fired.clone();
    let timer = f.ctx.timer(move |_| c.hit());
    timer.arm_in(Duration::from_micros(500));
    let before = f.ctx.stats();
    while fired.get() == 0 {
        f.ctx.poll(true).unwrap();
    }
    let after = f.ctx.stats();
    assert_eq!(
        after.waits - before.waits,
        1,
        "one wait until the timer, no spinning"
    );
    assert_eq!(runs.get(), 0);
    f.ctx.enable_external().unwrap();
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!(runs.get(), 1);
}

/// `handler_count` and removal of an fd without a handler.
pub fn removing_unknown_fd_is_noop(h: &Harness) {
    let f = h.fixture();
    let ev = f.event();
    assert_eq!(f.ctx.handler_count(), 0);
    f.ctx.set_fd_handler(&ev, None).unwrap();
    f.ctx
        .set_fd_handler(&ev, Some(FdHandler::new().on_read(|_| {})))
        .unwrap();
    f.ctx
        .set_fd_handler(&ev, Some(FdHandler::new().on_read(|_| {})))
        .unwrap();
    assert_eq!(f.ctx.handler_count(), 1, "registering twice replaces");
    f.ctx.set_fd_handler(&ev, None).unwrap();
    f.ctx.set_fd_handler(&ev, None).unwrap();
    assert_eq!(f.ctx.handler_count(), 0);
}

/// Bad input: a negative fd, a closed fd, and a handler without callbacks
/// are refused with an error, and nothing is registered.
pub fn bad_fds_are_refused(h: &Harness) {
    let f = h.fixture();
    let handler = || Some(FdHandler::new().on_read(|_| {}));
    let negative = f.ctx.set_fd_handler(-1 as RawFd, handler()).unwrap_err();
    assert_eq!(negative.kind(), std::io::ErrorKind::InvalidInput);
    // A number no file has here (the kernel hands out the lowest free one,
    // and no test opens a billion): a closed fd that no other thread can
    // reuse while the test runs.
    let closed: RawFd = 1 << 30;
    let err = f.ctx.set_fd_handler(closed, handler()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    let ev = f.event();
    let empty = f
        .ctx
        .set_fd_handler(&ev, Some(FdHandler::new()))
        .unwrap_err();
    assert_eq!(empty.kind(), std::io::ErrorKind::InvalidInput);
    assert_eq!(f.ctx.handler_count(), 0);
    assert!(!f.ctx.poll(false).unwrap(), "the context still works");
}
