//! Submissions are batched: in steady state an iteration that dispatches an
//! fd enters the kernel once, submitting the re-arm of the previous
//! completion and waiting in the same `io_uring_enter`.

mod common;

use std::rc::Rc;

use aio_core::{EventNotifier, FdHandler};
use fdmon_uring::TaskRun;

#[test]
fn one_enter_per_iteration() {
    for mode in TaskRun::ALL {
        let (ctx, seen) = common::watched_context(mode);
        let enters = || seen.enters();
        let idle: Vec<EventNotifier> = (0..8).map(|_| EventNotifier::new().unwrap()).collect();
        for n in &idle {
            ctx.set_fd_handler(n, Some(FdHandler::new().on_read(|_| {})))
                .unwrap();
        }
        let active = Rc::new(EventNotifier::new().unwrap());
        let a = Rc::clone(&active);
        ctx.set_fd_handler(
            &*active,
            Some(FdHandler::new().on_read(move |_| {
                a.test_and_clear().unwrap();
            })),
        )
        .unwrap();
        for blocking in [true, false] {
            for _ in 0..10 {
                active.set().unwrap();
                assert!(ctx.poll(blocking).unwrap());
            }
            let before = enters();
            for _ in 0..100 {
                active.set().unwrap();
                assert!(ctx.poll(blocking).unwrap());
            }
            assert_eq!(
                enters() - before,
                100,
                "{mode:?}: poll({blocking}) entered the kernel once per iteration"
            );
        }
        // Registration changes cost no entry of their own.
        let before = enters();
        for n in &idle {
            ctx.set_fd_handler(n, None).unwrap();
        }
        assert_eq!(enters(), before, "{mode:?}");
        active.set().unwrap();
        assert!(ctx.poll(true).unwrap());
        assert_eq!(
            enters(),
            before + 1,
            "{mode:?}: removals went with the wait"
        );
    }
}
