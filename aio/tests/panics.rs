//! A panic in any kind of callback (read, write, poll, poll_ready,
//! poll_begin, poll_end, bottom half, timer, remote closure) unwinds out of
//! `poll` on poll, epoll, io_uring and the sim, and the context stays
//! consistent:
//! the next `poll` works, every other registration intact, and the
//! panicking handler's callbacks are dropped once it is removed.

mod common;

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::time::Duration;

use aio_core::testing::{Count, DropProbe, Fixture};
use aio_core::{FdHandler, PollParams};
use common::Kind;

/// A fixture on `kind`, on a manual clock if asked.
fn fixture(kind: Kind, manual: bool) -> Fixture {
    let h = common::harness(kind);
    if manual {
        h.fixture_manual()
    } else {
        h.fixture()
    }
}

/// A bystander handler and bottom half that must keep working.
struct Bystanders {
    ev: Rc<aio_core::testing::TestEvent>,
    reads: Count,
    bh_runs: Count,
    bh: aio_core::BottomHalf,
}

impl Bystanders {
    fn new(f: &Fixture) -> Bystanders {
        let ev = Rc::new(f.event());
        let reads = Count::new();
        let (e, r) = (Rc::clone(&ev), reads.clone());
        // With a poll callback, so that it does not turn busy polling off.
        let handler = FdHandler::new()
            .on_read(move |_| {
                e.clear();
                r.hit();
            })
            .on_poll(|| false, |_| {});
        f.ctx.set_fd_handler(&*ev, Some(handler)).unwrap();
        let bh_runs = Count::new();
        let b = bh_runs.clone();
        let bh = f.ctx.bh(move |_| b.hit());
        Bystanders {
            ev,
            reads,
            bh_runs,
            bh,
        }
    }

    fn still_work(&self, f: &Fixture) {
        let (reads, runs) = (self.reads.get(), self.bh_runs.get());
        self.ev.set();
        self.bh.schedule();
        for _ in 0..3 {
            f.ctx.poll(false).unwrap();
        }
        assert_eq!(
            self.reads.get(),
            reads + 1,
            "the bystander handler still runs"
        );
        assert_eq!(
            self.bh_runs.get(),
            runs + 1,
            "the bystander bottom half still runs"
        );
    }
}

fn expect_panic(f: &Fixture) {
    let outcome = catch_unwind(AssertUnwindSafe(|| f.ctx.poll(false)));
    assert!(outcome.is_err(), "the panic reached the caller of poll");
}

fn panic_in_read_callback(kind: Kind) {
    let f = fixture(kind, false);
    let by = Bystanders::new(&f);
    let ev = f.event();
    f.ctx
        .set_fd_handler(&ev, Some(FdHandler::new().on_read(|_| panic!("read"))))
        .unwrap();
    ev.set();
    expect_panic(&f);
    ev.clear();
    f.ctx.set_fd_handler(&ev, None).unwrap();
    by.still_work(&f);
}

fn panic_in_write_callback(kind: Kind) {
    let f = fixture(kind, false);
    let by = Bystanders::new(&f);
    let ev = f.event();
    f.ctx
        .set_fd_handler(&ev, Some(FdHandler::new().on_write(|_| panic!("write"))))
        .unwrap();
    // An eventfd is writable; the sim is told so.
    if let Some(world) = f.world() {
        use std::os::fd::AsRawFd;
        world.set_ready(ev.as_raw_fd(), aio_core::Readiness::WRITABLE);
    }
    expect_panic(&f);
    f.ctx.set_fd_handler(&ev, None).unwrap();
    by.still_work(&f);
}

fn panic_in_bottom_half_keeps_the_rest_of_the_queue(kind: Kind) {
    let f = fixture(kind, false);
    let by = Bystanders::new(&f);
    let later = Count::new();
    let l = later.clone();
    f.ctx.schedule_oneshot(|_| panic!("bottom half"));
    f.ctx.schedule_oneshot(move |_| l.hit());
    expect_panic(&f);
    f.ctx.poll(false).unwrap();
    assert_eq!(
        later.get(),
        1,
        "the job after the panicking one still runs, once"
    );
    by.still_work(&f);
}

fn panic_in_timer(kind: Kind) {
    let f = fixture(kind, true);
    let by = Bystanders::new(&f);
    let timer = f.ctx.timer(|_| panic!("timer"));
    timer.arm_in(Duration::from_micros(1));
    f.clock().advance(Duration::from_micros(1));
    expect_panic(&f);
    assert!(!timer.is_armed());
    timer.arm_in(Duration::from_micros(1));
    timer.cancel();
    by.still_work(&f);
}

fn panic_in_remote_closure(kind: Kind) {
    let f = fixture(kind, false);
    let by = Bystanders::new(&f);
    let remote = f.ctx.remote();
    std::thread::spawn(move || remote.schedule(|_| panic!("remote")).unwrap())
        .join()
        .unwrap();
    expect_panic(&f);
    by.still_work(&f);
}

/// A polled device whose callbacks can be told to panic.
fn polled_device(
    f: &Fixture,
    which: &'static str,
    armed: &Rc<Cell<bool>>,
) -> Rc<aio_core::testing::TestEvent> {
    let ev = Rc::new(f.event());
    let e = Rc::clone(&ev);
    let (a1, a2, a3, a4) = (
        Rc::clone(armed),
        Rc::clone(armed),
        Rc::clone(armed),
        Rc::clone(armed),
    );
    let boom = move |a: &Rc<Cell<bool>>, name: &str| {
        if a.get() && which == name {
            a.set(false);
            panic!("{name}");
        }
    };
    let (b1, b2, b3, b4) = (boom, boom, boom, boom);
    let handler = FdHandler::new()
        .on_read(move |_| {
            e.clear();
        })
        .on_poll(
            move || {
                b1(&a1, "poll");
                true
            },
            move |_| b2(&a2, "poll_ready"),
        )
        .on_poll_begin(move || b3(&a3, "poll_begin"))
        .on_poll_end(move || b4(&a4, "poll_end"));
    f.ctx.set_fd_handler(&*ev, Some(handler)).unwrap();
    ev
}

fn panic_in_poll_callback(kind: Kind, which: &'static str) {
    let f = fixture(kind, true);
    f.clock().auto_advance(Duration::from_nanos(100));
    f.ctx.set_poll_params(PollParams::IOTHREAD);
    let by = Bystanders::new(&f);
    let armed = Rc::new(Cell::new(false));
    let ev = polled_device(&f, which, &armed);
    f.set_wait_time(Duration::from_micros(1));
    ev.set();
    f.ctx.poll(true).unwrap(); // joins the polled list, poll time 4 us
    armed.set(true);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        // poll_end runs when the loop leaves poll mode to block: give it a
        // timer to block for (and never block forever).
        let timer = f.ctx.timer(|_| {});
        for _ in 0..3 {
            timer.arm_in(Duration::from_micros(100));
            f.ctx.poll(true).unwrap();
        }
        f.ctx.set_fd_handler(&*ev, None).unwrap(); // poll_end on removal
    }));
    assert!(outcome.is_err(), "{which}: the panic reached the caller");
    assert!(!armed.get());
    f.ctx.set_fd_handler(&*ev, None).unwrap();
    by.still_work(&f);
}

fn panic_in_poll(kind: Kind) {
    panic_in_poll_callback(kind, "poll");
}

fn panic_in_poll_ready(kind: Kind) {
    panic_in_poll_callback(kind, "poll_ready");
}

fn panic_in_poll_begin(kind: Kind) {
    panic_in_poll_callback(kind, "poll_begin");
}

fn panic_in_poll_end(kind: Kind) {
    panic_in_poll_callback(kind, "poll_end");
}

/// The panicking read handler is dropped once when it is removed after the
/// panic, and never runs again.
fn panicking_handler_is_dropped_once(kind: Kind) {
    let f = fixture(kind, false);
    let by = Bystanders::new(&f);
    let ev = f.event();
    let drops = Count::new();
    let probe = DropProbe::new(&drops);
    f.ctx
        .set_fd_handler(
            &ev,
            Some(FdHandler::new().on_read(move |_| {
                let _ = &probe;
                panic!("read")
            })),
        )
        .unwrap();
    ev.set();
    expect_panic(&f);
    assert_eq!(drops.get(), 0);
    f.ctx.set_fd_handler(&ev, None).unwrap();
    assert_eq!(drops.get(), 1);
    f.ctx.poll(false).unwrap();
    by.still_work(&f);
}

on_every_monitor!(sim:
    panic_in_read_callback,
    panic_in_write_callback,
    panic_in_bottom_half_keeps_the_rest_of_the_queue,
    panic_in_timer,
    panic_in_remote_closure,
    panic_in_poll,
    panic_in_poll_ready,
    panic_in_poll_begin,
    panic_in_poll_end,
    panicking_handler_is_dropped_once,
);
