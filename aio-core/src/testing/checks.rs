//! The handlers and checks that tests of every crate use: a handler that
//! counts its runs, one that also clears its test fd, and the check that a
//! context still works after what a test did to it.

use std::ops::Deref;
use std::rc::Rc;
use std::sync::Arc;

use super::{Count, SimWorld, TestEvent};
use crate::{AioContext, FdHandler};

/// A handler whose read callback counts its runs in `runs` (and leaves the
/// fd as it is).
pub fn counting(runs: &Count) -> FdHandler {
    let runs = runs.clone();
    FdHandler::new().on_read(move |_| runs.hit())
}

/// A handler whose read callback makes `ev` (an `Rc` or `Arc` of a test
/// fd) not readable, then counts its run in `runs`.
pub fn clearing<E>(ev: &E, runs: &Count) -> FdHandler
where
    E: Clone + Deref<Target = TestEvent> + 'static,
{
    let (ev, runs) = (ev.clone(), runs.clone());
    FdHandler::new().on_read(move |_| {
        ev.clear();
        runs.hit();
    })
}

/// Asserts that `ctx` still works: a new fd (of `world`, for a context on
/// the sim), made readable once, runs its handler once, and a bottom half
/// runs once, within three non-blocking iterations. The check leaves
/// nothing registered.
///
/// # Panics
///
/// If the context stopped working, or the poll fails.
pub fn assert_still_works(ctx: &AioContext, world: Option<&Arc<SimWorld>>) {
    let ev = Rc::new(TestEvent::new(world));
    let (runs, bh_runs) = (Count::new(), Count::new());
    ctx.set_fd_handler(&*ev, Some(clearing(&ev, &runs)))
        .expect("a new fd is refused");
    let b = bh_runs.clone();
    let bh = ctx.bh(move |_| b.hit());
    bh.schedule();
    ev.set();
    for _ in 0..3 {
        ctx.poll(false).expect("the poll failed");
    }
    assert_eq!(
        (runs.get(), bh_runs.get()),
        (1, 1),
        "the context stopped working"
    );
    ctx.set_fd_handler(&*ev, None)
        .expect("the check's fd cannot be removed");
}
