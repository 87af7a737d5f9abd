//! Moving every registration to another monitor at run time.

use std::io;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use aio_core::Selection;
use aio_core::testing::{Count, Harness, SleepMonitor, TestMonitor, ThreadProbe, clearing};

#[test]
fn pending_readiness_survives_the_move() {
    let f = Harness::sim().fixture();
    let world = f.world().unwrap();
    let ev = Rc::new(f.event());
    let runs = Count::new();
    f.ctx
        .set_fd_handler(&*ev, Some(clearing(&ev, &runs)))
        .unwrap();
    ev.set();
    f.ctx
        .set_monitor(Box::new(world.monitor()), "a test")
        .unwrap();
    assert_eq!(
        f.ctx.backend().selection,
        Selection::Moved {
            from: "sim",
            why: "a test".into()
        }
    );
    assert!(
        f.ctx.poll(false).unwrap(),
        "the readiness pending before the move is seen after it"
    );
    assert_eq!(runs.get(), 1);
    // The context's own notifier moved too.
    let remote = f.ctx.remote();
    let _watchdog = f.watchdog(Duration::from_secs(20));
    let home = ThreadProbe::current();
    std::thread::spawn(move || {
        home.wait_until_blocked();
        remote.notify();
    });
    assert!(!f.ctx.poll(true).unwrap());
}

#[test]
fn refused_move_keeps_the_old_monitor() {
    let f = Harness::sim().fixture();
    let ev = Rc::new(f.event());
    let runs = Count::new();
    f.ctx
        .set_fd_handler(ev.as_raw_fd(), Some(clearing(&ev, &runs)))
        .unwrap();
    let refusing = TestMonitor::new(SleepMonitor::new())
        .on_update(|_, _, _, _| Err(io::Error::from_raw_os_error(libc::ENOMEM)));
    let err = f.ctx.set_monitor(Box::new(refusing), "a test").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOMEM));
    assert_eq!(f.ctx.backend().name, "sim");
    ev.set();
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!(runs.get(), 1);
}

#[test]
fn no_move_inside_poll() {
    let f = Harness::sim().fixture();
    let world = Rc::new(f.world().unwrap().clone());
    let result = Rc::new(std::cell::RefCell::new(None));
    let (w, res) = (Rc::clone(&world), Rc::clone(&result));
    f.ctx.schedule_oneshot(move |ctx| {
        *res.borrow_mut() = Some(
            ctx.set_monitor(Box::new(w.monitor()), "a test")
                .map_err(|e| e.kind()),
        );
    });
    f.ctx.poll(false).unwrap();
    assert_eq!(*result.borrow(), Some(Err(io::ErrorKind::ResourceBusy)));
}
