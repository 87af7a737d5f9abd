//! The upgrade to another monitor once enough handlers are registered: made
//! at the outermost `poll` only, losing no pending readiness, and, when the
//! new monitor fails, reported instead of retried.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use aio_core::testing::{Count, SimWorld};
use aio_core::{
    AioContext, ContextBuilder, FdHandler, PlannedUpgrade, PollParams, Selection, Upgrade,
};

/// A context on the sim that moves to a second sim monitor at 4 handlers.
/// On a manual clock, so that poll times do not depend on how fast the
/// machine runs the test.
fn context(world: &Arc<SimWorld>, opened: &Rc<Cell<usize>>) -> AioContext {
    let (w, o) = (Arc::clone(world), Rc::clone(opened));
    let clock = aio_core::ManualClock::new();
    clock.auto_advance(std::time::Duration::from_nanos(100));
    ContextBuilder::new(Box::new(world.monitor()))
        .clock(clock)
        .upgrade(Upgrade::new(4, "sim-upgraded", move || {
            o.set(o.get() + 1);
            Ok(Box::new(w.monitor()))
        }))
        .build()
        .unwrap()
}

/// An fd whose readiness lives in `world` (a real eventfd for its number).
fn event(world: &Arc<SimWorld>) -> Rc<Event> {
    Rc::new(Event {
        fd: aio_core::EventNotifier::new().unwrap(),
        world: Arc::clone(world),
    })
}

struct Event {
    fd: aio_core::EventNotifier,
    world: Arc<SimWorld>,
}

impl Event {
    fn set(&self) {
        use std::os::fd::AsRawFd;
        self.world
            .set_ready(self.fd.as_raw_fd(), aio_core::Readiness::READABLE);
    }
    fn clear(&self) {
        use std::os::fd::AsRawFd;
        self.world.clear(self.fd.as_raw_fd());
    }
}

fn reader(ev: &Rc<Event>, runs: &Count) -> FdHandler {
    let (ev, runs) = (Rc::clone(ev), runs.clone());
    FdHandler::new().on_read(move |_| {
        ev.clear();
        runs.hit();
    })
}

#[test]
fn pending_readiness_survives_the_upgrade() {
    let world = SimWorld::new();
    let opened = Rc::new(Cell::new(0));
    let ctx = context(&world, &opened);
    let events: Vec<_> = (0..4).map(|_| event(&world)).collect();
    let runs: Vec<_> = (0..4).map(|_| Count::new()).collect();
    for (ev, count) in events.iter().zip(&runs).take(3) {
        ctx.set_fd_handler(&ev.fd, Some(reader(ev, count))).unwrap();
    }
    events[0].set();
    ctx.set_fd_handler(&events[3].fd, Some(reader(&events[3], &runs[3])))
        .unwrap();
    assert_eq!(
        ctx.backend().selection,
        Selection::Given,
        "no move outside poll"
    );
    let planned = PlannedUpgrade {
        name: "sim-upgraded",
        at_handlers: 4,
    };
    assert_eq!(ctx.backend().upgrade, Some(planned));
    assert_eq!(
        ctx.backend().to_string(),
        "sim (given by the program), moving to sim-upgraded at 4 handlers"
    );
    assert!(ctx.poll(false).unwrap());
    assert_eq!(opened.get(), 1);
    assert_eq!(ctx.backend().name, "sim-upgraded");
    assert_eq!(
        ctx.backend().selection,
        Selection::Upgraded {
            from: "sim",
            at_handlers: 4
        }
    );
    assert_eq!(
        runs[0].get(),
        1,
        "the readiness pending before the move was dispatched"
    );
    assert_eq!(ctx.backend().upgrade, None, "done");
    events[3].set();
    assert!(ctx.poll(false).unwrap());
    assert_eq!(runs[3].get(), 1, "the new monitor watches every fd");
}

#[test]
fn upgrade_waits_for_the_outermost_poll() {
    let world = SimWorld::new();
    let opened = Rc::new(Cell::new(0));
    let ctx = Rc::new(context(&world, &opened));
    let events: Vec<_> = (0..4).map(|_| event(&world)).collect();
    let runs = Count::new();
    for ev in events.iter().take(3) {
        ctx.set_fd_handler(&ev.fd, Some(reader(ev, &runs))).unwrap();
    }
    let seen_inside = Rc::new(Cell::new(None));
    let (fourth, s, o, r) = (
        Rc::clone(&events[3]),
        Rc::clone(&seen_inside),
        Rc::clone(&opened),
        runs.clone(),
    );
    ctx.schedule_oneshot(move |ctx| {
        ctx.set_fd_handler(&fourth.fd, Some(reader(&fourth, &r)))
            .unwrap();
        fourth.set();
        ctx.poll(false).unwrap(); // nested: no move here
        s.set(Some((o.get(), ctx.backend().name)));
    });
    ctx.poll(false).unwrap();
    assert_eq!(
        seen_inside.get(),
        Some((0, "sim")),
        "no move inside a nested poll"
    );
    assert_eq!(
        runs.get(),
        1,
        "the nested poll served the fd on the old monitor"
    );
    ctx.poll(false).unwrap();
    assert_eq!(
        (opened.get(), ctx.backend().name),
        (1, "sim-upgraded"),
        "moved at the next outermost poll"
    );
}

#[test]
fn upgrade_while_polling_keeps_poll_mode_paired() {
    let world = SimWorld::new();
    let opened = Rc::new(Cell::new(0));
    let ctx = context(&world, &opened);
    ctx.set_poll_params(PollParams::IOTHREAD);
    let dev = event(&world);
    let (begins, ends, work) = (Count::new(), Count::new(), Rc::new(Cell::new(false)));
    let (d, b, e, w, c) = (
        Rc::clone(&dev),
        begins.clone(),
        ends.clone(),
        Rc::clone(&work),
        Rc::clone(&work),
    );
    let handler = FdHandler::new()
        .on_read(move |_| d.clear())
        .on_poll(move || c.get(), move |_| w.set(false))
        .on_poll_begin(move || b.hit())
        .on_poll_end(move || e.hit());
    ctx.set_fd_handler(&dev.fd, Some(handler)).unwrap();
    dev.set();
    ctx.poll(true).unwrap();
    work.set(true);
    ctx.poll(true).unwrap(); // in poll mode now
    let others: Vec<_> = (0..3).map(|_| event(&world)).collect();
    let runs = Count::new();
    for ev in &others {
        ctx.set_fd_handler(&ev.fd, Some(reader(ev, &runs).on_poll(|| false, |_| {})))
            .unwrap();
    }
    work.set(true);
    ctx.poll(true).unwrap();
    assert_eq!(ctx.backend().name, "sim-upgraded");
    assert!(!work.get(), "polling went on across the move");
    ctx.set_fd_handler(&dev.fd, None).unwrap();
    assert_eq!(
        begins.get(),
        ends.get(),
        "poll_begin and poll_end still pair up"
    );
}

#[test]
fn failed_upgrade_is_reported_and_not_retried() {
    let world = SimWorld::new();
    let tries = Rc::new(Cell::new(0));
    let t = Rc::clone(&tries);
    let ctx = ContextBuilder::new(Box::new(world.monitor()))
        .upgrade(Upgrade::new(1, "broken", move || {
            t.set(t.get() + 1);
            Err(io::Error::from_raw_os_error(libc::EMFILE))
        }))
        .build()
        .unwrap();
    let ev = event(&world);
    let runs = Count::new();
    ctx.set_fd_handler(&ev.fd, Some(reader(&ev, &runs)))
        .unwrap();
    ev.set();
    for _ in 0..3 {
        ctx.poll(false).unwrap();
    }
    assert_eq!(tries.get(), 1, "tried once");
    assert_eq!(
        runs.get(),
        1,
        "the context kept working on its first monitor"
    );
    let info = ctx.backend();
    assert_eq!((info.name, info.selection), ("sim", Selection::Given));
    assert_eq!(info.skipped.len(), 1);
    assert_eq!(info.upgrade, None, "given up");
    assert_eq!(info.upgrade, None, "given up");
    assert_eq!(info.skipped[0].name, "broken");
    assert!(
        info.skipped[0]
            .reason
            .contains("upgrade at 1 handlers failed"),
        "{}",
        info.skipped[0].reason
    );
}
