//! A monitor that fails after setup: with a planned fallback, the context
//! moves its registrations there and goes on; without one, or if the
//! fallback fails too, the error reaches the caller of `poll`.

use std::cell::Cell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use aio_core::testing::{Count, SimMonitor, SimWorld, TestMonitor};
use aio_core::{
    AioContext, ContextBuilder, EventNotifier, FdHandler, FdMonitor, Readiness, Selection,
};

/// A sim monitor named "breaking" whose waits fail once `broken` is set.
fn breaking(world: &Arc<SimWorld>, broken: &Rc<Cell<bool>>) -> TestMonitor<SimMonitor> {
    let broken = Rc::clone(broken);
    TestMonitor::new(world.monitor())
        .named("breaking")
        .on_wait(move |inner, events, timeout| {
            if broken.get() {
                return Err(io::Error::from_raw_os_error(libc::EBADFD));
            }
            inner.wait(events, timeout)
        })
}

fn ready_handler(world: &std::sync::Arc<SimWorld>, runs: &Count) -> (EventNotifier, FdHandler) {
    use std::os::fd::AsRawFd;
    let fd = EventNotifier::new().unwrap();
    let (w, n, r) = (std::sync::Arc::clone(world), fd.as_raw_fd(), runs.clone());
    let handler = FdHandler::new().on_read(move |_| {
        w.clear(n);
        r.hit();
    });
    world.set_ready(fd.as_raw_fd(), Readiness::READABLE);
    (fd, handler)
}

#[test]
fn a_failing_monitor_falls_back_and_the_context_goes_on() {
    let world = SimWorld::new();
    let broken = Rc::new(Cell::new(false));
    let w = std::sync::Arc::clone(&world);
    let ctx = ContextBuilder::new(Box::new(breaking(&world, &broken)))
        .fallback("sim", move || Ok(Box::new(w.monitor())))
        .build()
        .unwrap();
    let runs = Count::new();
    let (fd, handler) = ready_handler(&world, &runs);
    ctx.set_fd_handler(&fd, Some(handler)).unwrap();
    broken.set(true);
    assert!(
        !ctx.poll(false).unwrap(),
        "the failed wait is replaced, not returned"
    );
    let info = ctx.backend();
    assert_eq!(info.name, "sim");
    assert!(
        matches!(
            &info.selection,
            Selection::FellBack {
                from: "breaking",
                ..
            }
        ),
        "{info}"
    );
    assert!(ctx.poll(false).unwrap());
    assert_eq!(
        runs.get(),
        1,
        "the readiness pending when the monitor failed is served by the fallback"
    );
}

/// A context built by `build` on a monitor that is broken from the start,
/// with one fd ready, and the error of its first poll.
fn first_poll_when_broken(
    build: impl FnOnce(ContextBuilder) -> ContextBuilder,
) -> (AioContext, io::Error) {
    let world = SimWorld::new();
    let broken = Rc::new(Cell::new(true));
    let ctx = build(ContextBuilder::new(Box::new(breaking(&world, &broken))))
        .build()
        .unwrap();
    let (fd, handler) = ready_handler(&world, &Count::new());
    ctx.set_fd_handler(&fd, Some(handler)).unwrap();
    let err = ctx.poll(false).unwrap_err();
    (ctx, err)
}

#[test]
fn without_a_fallback_the_error_reaches_the_caller() {
    let (_ctx, err) = first_poll_when_broken(|builder| builder);
    assert_eq!(err.raw_os_error(), Some(libc::EBADFD));
}

#[test]
fn a_failing_fallback_is_reported_and_the_error_returned() {
    let (ctx, err) = first_poll_when_broken(|builder| {
        builder.fallback("nothing", || {
            Err(io::Error::from_raw_os_error(libc::ENOSYS))
        })
    });
    assert_eq!(err.raw_os_error(), Some(libc::EBADFD));
    let info = ctx.backend();
    assert_eq!(info.name, "breaking");
    assert_eq!(info.skipped[0].name, "nothing");
    assert!(
        info.skipped[0]
            .reason
            .contains("fallback after breaking failed"),
        "{info}"
    );
}
