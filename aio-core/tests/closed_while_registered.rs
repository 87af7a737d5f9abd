//! Debug builds catch an fd that was closed while its handler was
//! registered, its number reused by another file: the handler's callbacks
//! would otherwise run for a file they were not written for (as they do on
//! poll and io_uring). On the sim, which, like poll, reports readiness by fd
//! number.

#![cfg(debug_assertions)]

use std::os::fd::AsRawFd;
use std::panic::{AssertUnwindSafe, catch_unwind};

use aio_core::testing::{Count, SimWorld};
use aio_core::{AioContext, FdHandler, Readiness};

#[test]
fn an_fd_reused_while_registered_panics_before_its_callback_runs() {
    let world = SimWorld::new();
    let ctx = AioContext::with_monitor(Box::new(world.monitor())).unwrap();
    let (mut registered, _w) = rustix::pipe::pipe().unwrap();
    let (other, _wo) = rustix::pipe::pipe().unwrap();
    let fd = registered.as_raw_fd();
    let runs = Count::new();
    let r = runs.clone();
    ctx.set_fd_handler(fd, Some(FdHandler::new().on_read(move |_| r.hit())))
        .unwrap();
    rustix::io::dup2(&other, &mut registered).unwrap(); // `fd` names `other` now
    world.set_ready(fd, Readiness::READABLE);

    let panic = catch_unwind(AssertUnwindSafe(|| ctx.poll(false))).unwrap_err();
    let message = panic.downcast_ref::<String>().expect("a formatted message");
    assert!(
        message.contains(&format!(
            "fd {fd} was closed while its handler was registered"
        )),
        "{message}"
    );
    assert_eq!(runs.get(), 0, "the callback did not run");
    ctx.set_fd_handler(fd, None).unwrap();
    world.clear(fd);
    assert!(!ctx.poll(false).unwrap(), "the context still works");
}
