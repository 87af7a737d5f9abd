//! A handler whose `poll` callback and whose fd both show its work, on a
//! monitor that shows readiness in user space (io_uring's ring, simulated):
//!
//! * one event, one dispatch: when `poll` said yes and the monitor reported
//!   the fd in the same iteration, only the read callback runs (`poll_ready`
//!   may have drained what the read callback would block on); the work its
//!   `poll` saw is served by `poll_ready` in a later iteration;
//! * the monitor's "yes" for such an fd is treated as epoll's silence: the
//!   loop does not ask the monitor for up to 50 us since the last wait (the
//!   `poll` callback stands in for the fd), and asks once that has passed.
//!
//! Counted on a manual clock.

use std::cell::Cell;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use aio_core::testing::{Count, SimWorld};
use aio_core::{
    AioContext, ContextBuilder, EventNotifier, FdHandler, ManualClock, PollParams, Readiness,
};

/// The context and its handler: `work` is what the `poll` callback shows;
/// the read callback makes the fd not ready, `poll_ready` clears `work`.
struct Device {
    world: Arc<SimWorld>,
    clock: ManualClock,
    ctx: AioContext,
    fd: RawFd,
    _kick: EventNotifier,
    work: Rc<Cell<bool>>,
    reads: Count,
    readies: Count,
}

impl Device {
    /// Registered and served once through its fd, so that it is on the
    /// polled list.
    fn polled() -> Device {
        let world = SimWorld::new();
        let clock = ManualClock::new();
        let ctx = ContextBuilder::new(Box::new(world.monitor().observable(true)))
            .clock(clock.clone())
            .poll_params(PollParams::IOTHREAD)
            .build()
            .unwrap();
        let kick = EventNotifier::new().unwrap();
        let fd = kick.as_raw_fd();
        let (work, reads, readies) = (Rc::new(Cell::new(false)), Count::new(), Count::new());
        let (r, w, seen, done, p) = (
            reads.clone(),
            Arc::clone(&world),
            Rc::clone(&work),
            Rc::clone(&work),
            readies.clone(),
        );
        let handler = FdHandler::new()
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
        ctx.set_fd_handler(fd, Some(handler)).unwrap();
        world.set_ready(fd, Readiness::READABLE);
        ctx.poll(false).unwrap();
        assert_eq!(reads.get(), 1);
        Device {
            world,
            clock,
            ctx,
            fd,
            _kick: kick,
            work,
            reads,
            readies,
        }
    }

    /// Work that both the `poll` callback and the fd show.
    fn both_show_work(&self) {
        self.work.set(true);
        self.world.set_ready(self.fd, Readiness::READABLE);
    }
}

#[test]
fn a_handler_found_by_poll_and_by_its_fd_runs_its_read_callback_only() {
    let d = Device::polled();
    d.clock.auto_advance(Duration::from_nanos(100));
    d.both_show_work();
    // The fd check is due, so the monitor is asked in this iteration.
    d.clock.advance(Duration::from_micros(100));
    d.ctx.poll(false).unwrap();
    assert_eq!(
        (d.reads.get(), d.readies.get()),
        (2, 0),
        "both found it; only the read callback ran"
    );
    d.ctx.poll(false).unwrap();
    assert_eq!(
        (d.reads.get(), d.readies.get()),
        (2, 1),
        "the work poll saw is served next"
    );
}

#[test]
fn a_yes_for_a_covered_fd_waits_for_the_fd_check() {
    let d = Device::polled();
    let waits = d.ctx.stats().waits;
    for served in 1..=3 {
        d.both_show_work();
        d.clock.advance(Duration::from_micros(10));
        d.ctx.poll(false).unwrap();
        assert_eq!(d.readies.get(), served, "poll_ready serves it");
    }
    assert_eq!(d.ctx.stats().waits, waits, "no wait within 50 us");
    assert_eq!(d.reads.get(), 1, "the read callback waits for the fd check");

    d.clock.advance(Duration::from_micros(50));
    d.ctx.poll(false).unwrap();
    assert_eq!(d.ctx.stats().waits, waits + 1, "the fd check is due");
    assert_eq!(d.reads.get(), 2, "the fd's readiness is served then");
}
