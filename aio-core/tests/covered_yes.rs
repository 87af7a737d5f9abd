//! A monitor that shows readiness (io_uring's ring) says "yes" for an fd
//! whose `poll` callback already shows the work: the loop then treats it
//! as epoll's silence and does not ask the monitor for up to 50 us since
//! the last wait (the `poll` callback stands in for the fd), and asks once
//! that has passed. Counted on a manual clock.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::SimWorld;
use aio_core::{ContextBuilder, EventNotifier, FdHandler, ManualClock, PollParams, Readiness};

#[test]
fn a_yes_for_a_covered_fd_waits_for_the_fd_check() {
    let world = SimWorld::new();
    let clock = ManualClock::new();
    let ctx = ContextBuilder::new(Box::new(world.monitor().observable(true)))
        .clock(clock.clone())
        .poll_params(PollParams::IOTHREAD)
        .build()
        .unwrap();
    let kick = EventNotifier::new().unwrap();
    let fd = kick.as_raw_fd();
    let (reads, readies, work) = (
        Rc::new(Cell::new(0u32)),
        Rc::new(Cell::new(0u32)),
        Rc::new(Cell::new(false)),
    );
    let (r, w, seen, done, p) = (
        Rc::clone(&reads),
        world.clone(),
        Rc::clone(&work),
        Rc::clone(&work),
        Rc::clone(&readies),
    );
    let handler = FdHandler::new()
        .on_read(move |_| {
            w.clear(fd);
            r.set(r.get() + 1);
        })
        .on_poll(
            move || seen.get(),
            move |_| {
                done.set(false);
                p.set(p.get() + 1);
            },
        );
    ctx.set_fd_handler(fd, Some(handler)).unwrap();
    world.set_ready(fd, Readiness::READABLE);
    ctx.poll(false).unwrap(); // on the polled list from now on
    assert_eq!(reads.get(), 1);

    // The fd is ready and the monitor says so, but `poll` shows the work.
    let waits = ctx.stats().waits;
    for served in 1..=3 {
        work.set(true);
        world.set_ready(fd, Readiness::READABLE);
        clock.advance(Duration::from_micros(10));
        ctx.poll(false).unwrap();
        assert_eq!(readies.get(), served, "poll_ready serves it");
    }
    assert_eq!(ctx.stats().waits, waits, "no wait within 50 us");
    assert_eq!(reads.get(), 1, "the read callback waits for the fd check");

    clock.advance(Duration::from_micros(50));
    ctx.poll(false).unwrap();
    assert_eq!(ctx.stats().waits, waits + 1, "the fd check is due");
    assert_eq!(reads.get(), 2, "the fd's readiness is served then");
}
