//! Event notifiers (fds that become readable when set) as handlers.

use crate::FdHandler;
use crate::testing::{Count, Harness, clearing};

/// Added and removed without being set: nothing runs.
pub fn notifier_add_remove_unset(h: &Harness) {
    let f = h.fixture();
    let ev = std::rc::Rc::new(f.event());
    let runs = Count::new();
    f.ctx
        .set_fd_handler(&*ev, Some(clearing(&ev, &runs)))
        .unwrap();
    assert!(!f.poll(false).unwrap());
    f.ctx.set_fd_handler(&*ev, None).unwrap();
    assert!(!f.poll(false).unwrap());
    assert_eq!(runs.get(), 0);
    assert_eq!(f.ctx.handler_count(), 0);
}

/// Set, then `poll(false)`: the handler runs once.
pub fn notifier_set_runs_handler_once(h: &Harness) {
    let f = h.fixture();
    let ev = std::rc::Rc::new(f.event());
    let runs = Count::new();
    f.ctx
        .set_fd_handler(&*ev, Some(clearing(&ev, &runs)))
        .unwrap();
    ev.set();
    assert!(f.poll(false).unwrap());
    assert_eq!(runs.get(), 1);
    assert!(!f.poll(false).unwrap());
    assert_eq!(runs.get(), 1);
    f.ctx.set_fd_handler(&*ev, None).unwrap();
}

/// With the context's own notifier as the only other fd, a set notifier
/// makes `poll(true)` return true without blocking.
pub fn notifier_set_makes_blocking_poll_return(h: &Harness) {
    let f = h.fixture();
    let ev = std::rc::Rc::new(f.event());
    let runs = Count::new();
    f.ctx
        .set_fd_handler(&*ev, Some(clearing(&ev, &runs)))
        .unwrap();
    ev.set();
    let (before, slept_before) = (f.ctx.stats(), f.blocking_waits());
    assert!(f.poll(true).unwrap());
    assert_eq!(runs.get(), 1);
    if f.is_outer_loop() {
        // prepare() already saw the fd: the outer loop did not sleep.
        assert_eq!(
            f.blocking_waits(),
            slept_before,
            "the outer loop did not sleep"
        );
    } else {
        let waits = f.ctx.stats().waits - before.waits;
        assert_eq!(waits, 1, "one wait, which found the fd ready");
    }
    f.ctx.set_fd_handler(&*ev, None).unwrap();
}

/// A handler that sets its own notifier again runs once per `poll`.
pub fn notifier_resetting_itself_runs_each_poll(h: &Harness) {
    let f = h.fixture();
    let ev = std::rc::Rc::new(f.event());
    let runs = Count::new();
    let (e, r) = (std::rc::Rc::clone(&ev), runs.clone());
    f.ctx
        .set_fd_handler(
            &*ev,
            Some(FdHandler::new().on_read(move |_| {
                e.clear();
                r.hit();
                if r.get() < 10 {
                    e.set();
                }
            })),
        )
        .unwrap();
    ev.set();
    for i in 1..=10 {
        assert!(f.poll(true).unwrap());
        assert_eq!(runs.get(), i);
    }
    assert!(!f.poll(false).unwrap());
    assert_eq!(runs.get(), 10);
    f.ctx.set_fd_handler(&*ev, None).unwrap();
}
