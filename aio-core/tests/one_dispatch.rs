//! One event, one dispatch: a handler whose `poll` said yes and whose fd
//! the monitor reported in the same iteration gets its read callback only
//! (`poll_ready` may have drained what the read callback would block on);
//! the work its `poll` saw is served by `poll_ready` in a later iteration.
//! (The monitor is asked in that iteration because the fd check is due:
//! within 50 us of the last wait a `poll` callback that shows the work
//! stands in for the fd, on a monitor that shows readiness too.)

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;

use aio_core::testing::{Count, SimWorld};
use aio_core::{ContextBuilder, EventNotifier, FdHandler, ManualClock, PollParams, Readiness};

#[test]
fn a_handler_found_by_poll_and_by_its_fd_runs_its_read_callback_only() {
    let world = SimWorld::new();
    let clock = ManualClock::new();
    clock.auto_advance(std::time::Duration::from_nanos(100));
    let ctx = ContextBuilder::new(Box::new(world.monitor().observable(true)))
        .clock(clock.clone())
        .poll_params(PollParams::IOTHREAD)
        .build()
        .unwrap();
    let kick = EventNotifier::new().unwrap();
    let fd = kick.as_raw_fd();
    let work = Rc::new(Cell::new(false));
    let (reads, readies) = (Count::new(), Count::new());
    let (r, w, seen, done) = (
        reads.clone(),
        std::sync::Arc::clone(&world),
        Rc::clone(&work),
        Rc::clone(&work),
    );
    let p = readies.clone();
    let device = FdHandler::new()
        .on_read(move |_| {
            w.clear(fd);
            r.hit();
        })
        .on_poll(
            move || seen.get(),
            move |_| {
                done.set(false);
                p.hit();
            },
        );
    ctx.set_fd_handler(fd, Some(device)).unwrap();
    world.set_ready(fd, Readiness::READABLE);
    ctx.poll(false).unwrap(); // on the polled list from now on
    assert_eq!(reads.get(), 1);

    work.set(true);
    world.set_ready(fd, Readiness::READABLE);
    clock.advance(std::time::Duration::from_micros(100));
    ctx.poll(false).unwrap();
    assert_eq!(
        (reads.get(), readies.get()),
        (2, 0),
        "both found it; only the read callback ran"
    );
    ctx.poll(false).unwrap();
    assert_eq!(
        (reads.get(), readies.get()),
        (2, 1),
        "the work poll saw is served next"
    );
}
