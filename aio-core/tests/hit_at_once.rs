//! A blocking pass whose polled handler has work at once (a loop serving
//! back-to-back requests) takes it from the first round of `poll`
//! callbacks without reading the clock, for at most four passes in a row;
//! the fifth reads it again, so what the readings bound stays bounded.
//! Counted on a manual clock that moves by one step per reading.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::SimWorld;
use aio_core::{ContextBuilder, EventNotifier, FdHandler, ManualClock, PollParams, Readiness};

const STEP_NS: u64 = 10;

#[test]
fn back_to_back_hits_read_the_clock_once_in_five_passes() {
    let world = SimWorld::new();
    let clock = ManualClock::new();
    clock.auto_advance(Duration::from_nanos(STEP_NS));
    let ctx = ContextBuilder::new(Box::new(world.monitor().virtual_time(true)))
        .clock(clock.clone())
        .poll_params(PollParams::IOTHREAD)
        .build()
        .unwrap();
    let device = EventNotifier::new().unwrap();
    let work = Rc::new(Cell::new(0u32));
    let served = Rc::new(Cell::new(0u32));
    let (w, check, s) = (Rc::clone(&work), Rc::clone(&work), Rc::clone(&served));
    let (wd, fd) = (world.clone(), device.as_raw_fd());
    let handler = FdHandler::new()
        .on_read(move |_| {
            wd.clear(fd);
        })
        .on_poll(
            move || check.get() > 0,
            move |_| {
                w.set(w.get() - 1);
                s.set(s.get() + 1);
            },
        );
    ctx.set_fd_handler(&device, Some(handler)).unwrap();
    // Ready once through the fd, and once found by polling after a short
    // wait, so that it is on the polled list with a poll time.
    world.set_ready(fd, Readiness::READABLE);
    assert!(ctx.poll(true).unwrap());
    work.set(1);
    assert!(ctx.poll(true).unwrap());
    assert!(ctx.poll_time(&device).is_some_and(|t| t > Duration::ZERO));

    let passes = 20;
    work.set(passes);
    let (before, hits) = (clock.now_ns(), ctx.stats().poll_hits);
    for _ in 0..passes {
        assert!(ctx.poll(true).unwrap(), "each pass serves one request");
    }
    let readings = (clock.now_ns() - before) / STEP_NS;
    assert_eq!(served.get(), passes + 1);
    assert_eq!(ctx.stats().poll_hits - hits, u64::from(passes));
    assert_eq!(
        readings,
        u64::from(passes / 5),
        "one reading in five passes ({readings} readings in {passes} passes)"
    );
}
