//! A blocking pass that a pending notification turns into a non-blocking
//! one still serves what is ready: no poll round ran in it (the handler's
//! poll time is zero, so there was no window), so the pass cannot count on
//! `poll` callbacks having shown every fd's work and asks the monitor.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::SimWorld;
use aio_core::{ContextBuilder, EventNotifier, FdHandler, ManualClock, PollParams, Readiness};

#[test]
fn a_notified_pass_without_a_window_serves_a_ready_fd() {
    let world = SimWorld::new();
    let ctx = ContextBuilder::new(Box::new(world.monitor().virtual_time(true)))
        .clock(ManualClock::new())
        .poll_params(PollParams::IOTHREAD)
        .build()
        .unwrap();
    let device = EventNotifier::new().unwrap();
    let served = Rc::new(Cell::new(0u32));
    let (s, fd, wd) = (Rc::clone(&served), device.as_raw_fd(), world.clone());
    let handler = FdHandler::new()
        .on_read(move |_| {
            wd.clear(fd);
            s.set(s.get() + 1);
        })
        .on_poll(|| false, |_| {});
    ctx.set_fd_handler(&device, Some(handler)).unwrap();
    // Served once through the fd: on the polled list, with no poll time.
    world.set_ready(fd, Readiness::READABLE);
    ctx.poll(true).unwrap();
    assert_eq!(served.get(), 1);
    assert_eq!(ctx.poll_time(&device), Some(Duration::ZERO));

    for round in 2..=4 {
        ctx.remote().notify();
        world.set_ready(fd, Readiness::READABLE);
        ctx.poll(true).unwrap();
        assert_eq!(served.get(), round, "round {round}: the ready fd waits");
    }
}
