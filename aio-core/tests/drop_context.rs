//! A context dropped with handlers, timers, bottom halves and remote jobs
//! still registered: everything is dropped once, nothing runs, and handles
//! that outlive it report it.

use std::time::Duration;

use aio_core::testing::{Count, DropProbe, Harness};
use aio_core::{FdHandler, Gone};

#[test]
fn everything_is_dropped_once_and_nothing_runs() {
    let f = Harness::sim().fixture();
    let (runs, drops) = (Count::new(), Count::new());
    let probe = || DropProbe::new(&drops);

    let ev = f.event();
    let (r, p) = (runs.clone(), probe());
    f.ctx
        .set_fd_handler(
            &ev,
            Some(FdHandler::new().on_read(move |_| {
                let _ = &p;
                r.hit();
            })),
        )
        .unwrap();
    ev.set();

    let (r, p) = (runs.clone(), probe());
    let bh = f.ctx.bh(move |_| {
        let _ = &p;
        r.hit();
    });
    bh.schedule();
    let remote_bh = bh.remote();

    let (r, p) = (runs.clone(), probe());
    let timer = f.ctx.timer(move |_| {
        let _ = &p;
        r.hit();
    });
    timer.arm_in(Duration::ZERO);

    let (r, p) = (runs.clone(), probe());
    f.ctx.schedule_oneshot(move |_| {
        let _ = &p;
        r.hit();
    });

    let remote = f.ctx.remote();
    let remote_drops = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    struct SendProbe(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Drop for SendProbe {
        fn drop(&mut self) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let p = SendProbe(std::sync::Arc::clone(&remote_drops));
    remote
        .schedule(move |_| {
            let _ = &p;
            panic!("a job of a dropped context ran")
        })
        .unwrap();

    drop(f);
    assert_eq!(runs.get(), 0, "nothing ran");
    assert_eq!(drops.get(), 4, "every callback was dropped");
    assert_eq!(
        remote_drops.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the queued remote job too"
    );
    assert_eq!(remote.schedule(|_| {}), Err(Gone::Context));
    assert!(remote.is_closed());
    assert_eq!(
        remote_bh.schedule(),
        Err(Gone::Context),
        "the bottom half's handle is alive: the context is what is gone"
    );
    // Handles that outlive the context are inert.
    bh.schedule();
    timer.arm_in(Duration::ZERO);
    assert!(!timer.is_armed());
    drop((bh, timer));
    assert_eq!(drops.get(), 4, "and dropped only once");
}

/// A `RemoteBh` scheduled after its context was dropped, with its
/// `BottomHalf` handle still alive, says that the context is gone (it used
/// to say the bottom half had been deleted); once the handle is dropped
/// too, the context is still what went first.
#[test]
fn a_remote_bh_of_a_dropped_context_says_the_context_is_gone() {
    let f = Harness::sim().fixture();
    let bh = f.ctx.bh(|_| {});
    let remote_bh = bh.remote();
    assert_eq!(remote_bh.schedule(), Ok(()));
    drop(f);
    assert_eq!(remote_bh.schedule(), Err(Gone::Context));
    assert_eq!(
        remote_bh.schedule().unwrap_err().to_string(),
        "the AioContext has been dropped"
    );
    drop(bh);
    assert_eq!(remote_bh.schedule(), Err(Gone::Context));
}
