//! Events for tokens that no longer resolve (an io_uring completion that
//! arrives after its handler was removed, or after the fd number was reused)
//! are dropped, never delivered to whoever owns the fd now.

use std::os::fd::AsRawFd;
use std::rc::Rc;

use aio_core::testing::{Count, Harness, counting, token_of};
use aio_core::{Readiness, ReadyEvent};

#[test]
fn event_for_removed_handler_is_dropped() {
    let f = Harness::sim().fixture();
    let ev = f.event();
    let runs = Count::new();
    f.ctx.set_fd_handler(&ev, Some(counting(&runs))).unwrap();
    let stale = token_of(&f.ctx, ev.as_raw_fd()).unwrap();
    f.ctx.set_fd_handler(&ev, None).unwrap();
    f.world().unwrap().inject(ReadyEvent {
        token: stale,
        readiness: Readiness::READABLE,
    });
    assert!(!f.ctx.poll(false).unwrap());
    assert_eq!(runs.get(), 0);
}

#[test]
fn event_for_replaced_handler_never_reaches_the_new_one() {
    let f = Harness::sim().fixture();
    let ev = f.event();
    let (old_runs, new_runs) = (Count::new(), Count::new());
    f.ctx
        .set_fd_handler(&ev, Some(counting(&old_runs)))
        .unwrap();
    let stale = token_of(&f.ctx, ev.as_raw_fd()).unwrap();
    f.ctx
        .set_fd_handler(&ev, Some(counting(&new_runs)))
        .unwrap();
    let fresh = token_of(&f.ctx, ev.as_raw_fd()).unwrap();
    assert_ne!(stale, fresh, "a replacement gets a new token");
    f.world().unwrap().inject(ReadyEvent {
        token: stale,
        readiness: Readiness::READABLE,
    });
    assert!(!f.ctx.poll(false).unwrap());
    assert_eq!((old_runs.get(), new_runs.get()), (0, 0));
    f.world().unwrap().inject(ReadyEvent {
        token: fresh,
        readiness: Readiness::READABLE,
    });
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!((old_runs.get(), new_runs.get()), (0, 1));
}

#[test]
fn event_for_reused_fd_number_is_dropped() {
    let f = Harness::sim().fixture();
    let runs_old = Count::new();
    let (stale, number) = {
        let ev = f.event();
        f.ctx
            .set_fd_handler(&ev, Some(counting(&runs_old)))
            .unwrap();
        let stale = token_of(&f.ctx, ev.as_raw_fd()).unwrap();
        // Closed before it is removed: removal must still succeed.
        let number = ev.as_raw_fd();
        drop(ev);
        f.ctx.set_fd_handler(number, None).unwrap();
        (stale, number)
    };
    // The next fd opened gets the lowest free number, usually the same one.
    let ev = f.event();
    let runs_new = Count::new();
    f.ctx
        .set_fd_handler(&ev, Some(counting(&runs_new)))
        .unwrap();
    let _ = number == ev.as_raw_fd();
    f.world().unwrap().inject(ReadyEvent {
        token: stale,
        readiness: Readiness::READABLE,
    });
    assert!(!f.ctx.poll(false).unwrap());
    assert_eq!((runs_old.get(), runs_new.get()), (0, 0));
}

#[test]
fn duplicate_events_in_one_wait_dispatch_once() {
    let f = Harness::sim().fixture();
    let ev = Rc::new(f.event());
    let runs = Count::new();
    f.ctx.set_fd_handler(&*ev, Some(counting(&runs))).unwrap();
    let token = token_of(&f.ctx, ev.as_raw_fd()).unwrap();
    for _ in 0..3 {
        f.world().unwrap().inject(ReadyEvent {
            token,
            readiness: Readiness::READABLE,
        });
    }
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!(runs.get(), 1);
}
