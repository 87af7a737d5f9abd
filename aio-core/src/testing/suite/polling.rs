//! Adaptive busy polling: `poll` / `poll_ready`, `poll_begin` / `poll_end`
//! pairing, and the growth and shrinking of poll times (manual clock).

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use crate::testing::{Count, Fixture, Harness, TestEvent, Watchdog, clearing};
use crate::{FdHandler, PollHook, PollParams};

/// A device with a work flag that its `poll` callback checks.
struct Device {
    ev: Rc<TestEvent>,
    work: Rc<Cell<bool>>,
    reads: Count,
    readies: Count,
    begins: Count,
    ends: Count,
}

impl Device {
    fn register(f: &Fixture) -> Device {
        let device = Device {
            ev: Rc::new(f.event()),
            work: Rc::default(),
            reads: Count::new(),
            readies: Count::new(),
            begins: Count::new(),
            ends: Count::new(),
        };
        f.ctx
            .set_fd_handler(&*device.ev, Some(device.handler()))
            .unwrap();
        device
    }

    fn handler(&self) -> FdHandler {
        let (ev, reads) = (Rc::clone(&self.ev), self.reads.clone());
        let (work, readies) = (Rc::clone(&self.work), self.readies.clone());
        let check = Rc::clone(&self.work);
        let (begins, ends) = (self.begins.clone(), self.ends.clone());
        FdHandler::new()
            .on_read(move |_| {
                ev.clear();
                reads.hit();
            })
            .on_poll(
                move || check.get(),
                move |_| {
                    work.set(false);
                    readies.hit();
                },
            )
            .on_poll_begin(move || begins.hit())
            .on_poll_end(move || ends.hit())
    }

    /// Makes the fd fire once, so the handler joins the polled list.
    fn kick(&self, f: &Fixture) {
        self.ev.set();
        assert!(f.ctx.poll(true).unwrap());
    }
}

fn polling_fixture(h: &Harness) -> Fixture {
    let f = h.fixture_manual();
    // Every clock reading moves time by 100 ns, so busy-poll windows end.
    f.clock().auto_advance(Duration::from_nanos(100));
    f.ctx.set_poll_params(PollParams::IOTHREAD);
    f
}

/// A handler whose `poll` says yes is served through `poll_ready`, without
/// a blocking wait.
pub fn poll_yes_runs_poll_ready(h: &Harness) {
    let f = polling_fixture(h);
    let device = Device::register(&f);
    f.set_wait_time(Duration::from_micros(1));
    device.kick(&f);
    assert_eq!(device.reads.get(), 1);
    assert!(
        f.ctx.poll_time(&*device.ev).unwrap() > Duration::ZERO,
        "joined the polled list and grew"
    );
    device.work.set(true);
    let before = f.ctx.stats();
    assert!(f.ctx.poll(true).unwrap());
    let after = f.ctx.stats();
    assert_eq!(device.readies.get(), 1, "poll_ready ran");
    assert_eq!(device.reads.get(), 1, "the fd was not involved");
    assert_eq!(after.poll_hits - before.poll_hits, 1);
    assert_eq!(
        after.blocking_waits, before.blocking_waits,
        "no blocking wait"
    );
    f.ctx.set_fd_handler(&*device.ev, None).unwrap();
}

/// `poll_begin` and `poll_end` come in pairs: poll mode is left only when
/// the loop blocks, a loop that keeps finding work stays in it, and
/// removing the handler while it is polled ends it.
pub fn poll_begin_end_pair_up(h: &Harness) {
    let f = polling_fixture(h);
    let device = Device::register(&f);
    f.set_wait_time(Duration::from_micros(1));
    device.kick(&f);
    assert_eq!((device.begins.get(), device.ends.get()), (0, 0));

    // Work found by polling: poll mode starts and stays on.
    for _ in 0..3 {
        device.work.set(true);
        f.ctx.poll(true).unwrap();
    }
    assert_eq!(
        (device.begins.get(), device.ends.get()),
        (1, 0),
        "stays in poll mode while it finds work"
    );

    // Nothing found: the loop leaves poll mode before it blocks (until a timer).
    let timer = f.ctx.timer(|_| {});
    timer.arm_in(Duration::from_micros(200));
    f.ctx.poll(true).unwrap();
    assert_eq!(
        (device.begins.get(), device.ends.get()),
        (1, 1),
        "left poll mode to block"
    );

    // Back in poll mode, then removed while polled.
    device.work.set(true);
    f.ctx.poll(true).unwrap();
    assert_eq!(device.begins.get(), 2);
    f.ctx.set_fd_handler(&*device.ev, None).unwrap();
    assert_eq!(device.ends.get(), 2, "removal while polled ends poll mode");
}

/// `set_fd_poll` adds `poll_begin` / `poll_end` to a registered handler, or
/// replaces them, keeping its poll time; replaced while the handler is
/// polled, the old `poll_end` and the new `poll_begin` run, so pairs stay
/// whole. A handler without a `poll` callback, or no handler, is refused.
pub fn poll_hooks_set_later_keep_the_poll_time(h: &Harness) {
    let f = polling_fixture(h);
    let ev = Rc::new(f.event());
    let work = Rc::new(Cell::new(false));
    let (e, check, w) = (Rc::clone(&ev), Rc::clone(&work), Rc::clone(&work));
    let device = FdHandler::new()
        .on_read(move |_| {
            e.clear();
        })
        .on_poll(move || check.get(), move |_| w.set(false));
    f.ctx.set_fd_handler(&*ev, Some(device)).unwrap();
    let kick = |wait_us| {
        f.set_wait_time(Duration::from_micros(wait_us));
        ev.set();
        assert!(f.ctx.poll(true).unwrap());
    };
    kick(1);
    kick(5);
    let poll_time = f.ctx.poll_time(&*ev);
    assert_eq!(poll_time, Some(Duration::from_nanos(8_000)));

    let hooks = |begins: &Count, ends: &Count| -> (Option<PollHook>, Option<PollHook>) {
        let (b, e) = (begins.clone(), ends.clone());
        (
            Some(Box::new(move || b.hit())),
            Some(Box::new(move || e.hit())),
        )
    };
    let (first_begins, first_ends) = (Count::new(), Count::new());
    let (begin, end) = hooks(&first_begins, &first_ends);
    f.ctx.set_fd_poll(&*ev, begin, end).unwrap();
    assert_eq!(f.ctx.poll_time(&*ev), poll_time, "the poll time was kept");

    work.set(true);
    assert!(f.ctx.poll(true).unwrap());
    assert_eq!(
        (first_begins.get(), first_ends.get()),
        (1, 0),
        "polled with the new hooks"
    );

    let (second_begins, second_ends) = (Count::new(), Count::new());
    let (begin, end) = hooks(&second_begins, &second_ends);
    f.ctx.set_fd_poll(&*ev, begin, end).unwrap();
    assert_eq!(
        (first_ends.get(), second_begins.get()),
        (1, 1),
        "replaced while polled: the old end, then the new begin"
    );
    let timer = f.ctx.timer(|_| {});
    timer.arm_in(Duration::from_micros(200));
    f.ctx.poll(true).unwrap();
    assert_eq!(
        (
            first_begins.get(),
            first_ends.get(),
            second_begins.get(),
            second_ends.get()
        ),
        (1, 1, 1, 1),
        "left poll mode through the new end"
    );

    let plain = f.event();
    f.ctx
        .set_fd_handler(&plain, Some(FdHandler::new().on_read(|_| {})))
        .unwrap();
    let kind = |fd: &TestEvent| f.ctx.set_fd_poll(fd, None, None).unwrap_err().kind();
    assert_eq!(kind(&plain), std::io::ErrorKind::Unsupported);
    assert_eq!(kind(&f.event()), std::io::ErrorKind::NotFound);
    f.ctx.set_fd_handler(&*ev, None).unwrap();
}

/// A final `poll` after `poll_end` catches work that arrived while the
/// device turned its notifications back on.
pub fn final_poll_after_poll_end_catches_work(h: &Harness) {
    let f = polling_fixture(h);
    let ev = Rc::new(f.event());
    let work = Rc::new(Cell::new(false));
    let readies = Count::new();
    let (e, w, c, r, end_w) = (
        Rc::clone(&ev),
        Rc::clone(&work),
        Rc::clone(&work),
        readies.clone(),
        Rc::clone(&work),
    );
    f.ctx
        .set_fd_handler(
            &*ev,
            Some(
                FdHandler::new()
                    .on_read(move |_| {
                        e.clear();
                    })
                    .on_poll(
                        move || c.get(),
                        move |_| {
                            w.set(false);
                            r.hit();
                        },
                    )
                    // Work lands just as notifications are re-enabled.
                    .on_poll_end(move || end_w.set(true)),
            ),
        )
        .unwrap();
    f.set_wait_time(Duration::from_micros(1));
    ev.set();
    f.ctx.poll(true).unwrap(); // joins the polled list
    let timer = f.ctx.timer(|_| {});
    timer.arm_in(Duration::from_millis(1));
    let before = f.ctx.stats();
    assert!(
        f.ctx.poll(true).unwrap(),
        "the final poll found work: progress"
    );
    assert_eq!(readies.get(), 1);
    assert_eq!(
        f.ctx.stats().blocking_waits,
        before.blocking_waits,
        "and the loop did not block"
    );
    f.ctx.set_fd_handler(&*ev, None).unwrap();
}

/// Poll time starts at 4 us, doubles while the loop blocked longer than it
/// but less than `max_ns`, stays when polling would have caught the event,
/// and resets when the loop blocked longer than `max_ns`.
pub fn poll_time_grows_and_shrinks(h: &Harness) {
    let f = polling_fixture(h);
    let device = Device::register(&f);
    let poll_ns = || f.ctx.poll_time(&*device.ev).map(|d| d.as_nanos());

    assert_eq!(poll_ns(), None, "not polled before it was ever ready");
    f.set_wait_time(Duration::from_micros(1));
    device.kick(&f);
    assert_eq!(poll_ns(), Some(4_000), "starts at 4 us");

    // Blocked longer than the poll time, under 32 us. (A monitor that sees
    // readiness in user space ends the window as soon as the kick shows, so
    // the blocking time is the wait's.)
    f.set_wait_time(Duration::from_micros(5));
    device.kick(&f);
    assert_eq!(poll_ns(), Some(8_000));
    f.set_wait_time(Duration::from_micros(9));
    device.kick(&f);
    assert_eq!(poll_ns(), Some(16_000));

    // Polling finds the work at once: the iteration barely blocked.
    device.work.set(true);
    f.ctx.poll(true).unwrap();
    assert_eq!(device.readies.get(), 1);
    assert_eq!(poll_ns(), Some(16_000), "kept: polling caught it");

    // Blocked for longer than max_ns: reset (shrink 0).
    f.set_wait_time(Duration::from_micros(40));
    device.kick(&f);
    assert_eq!(poll_ns(), Some(0));

    // Growth factor and shrink divisor as set.
    f.ctx.set_poll_params(PollParams {
        max_ns: 1_000_000,
        grow: 4,
        shrink: 2,
    });
    f.set_wait_time(Duration::from_micros(1));
    device.kick(&f);
    assert_eq!(poll_ns(), Some(4_000));
    f.set_wait_time(Duration::from_micros(5));
    device.kick(&f);
    assert_eq!(poll_ns(), Some(16_000), "grew by 4");
    f.set_wait_time(Duration::from_millis(2));
    device.kick(&f);
    assert_eq!(poll_ns(), Some(8_000), "shrank by 2");
    assert_eq!(f.ctx.stats().max_poll_ns, 8_000);
    f.ctx.set_fd_handler(&*device.ev, None).unwrap();
}

/// With polling off (`max_ns = 0`), nothing is busy-polled.
pub fn polling_off_never_polls(h: &Harness) {
    let f = polling_fixture(h);
    f.ctx.set_poll_params(PollParams::OFF);
    let device = Device::register(&f);
    device.kick(&f);
    device.work.set(true);
    device.ev.set();
    f.ctx.poll(true).unwrap();
    let stats = f.ctx.stats();
    assert_eq!((stats.poll_hits, stats.poll_misses), (0, 0));
    assert_eq!(device.begins.get(), 0);
    assert_eq!(device.readies.get(), 0);
    assert_eq!(device.reads.get(), 2);
    f.ctx.set_fd_handler(&*device.ev, None).unwrap();
}

/// With polling on and every watched handler on the polled list, a
/// non-blocking iteration asks the `poll` callbacks instead of the kernel;
/// the kernel is still asked at least every 50 us, so fd readiness that no
/// `poll` callback reports is not starved.
pub fn covered_loop_asks_poll_callbacks_and_kernel_every_50us(h: &Harness) {
    let f = h.fixture_manual();
    f.ctx.set_poll_params(PollParams::IOTHREAD);
    let device = Device::register(&f);
    device.kick(&f); // now on the polled list: every watched fd is covered

    let before = f.ctx.stats();
    for i in 1..=10 {
        device.work.set(true);
        assert!(f.ctx.poll(false).unwrap());
        assert_eq!(
            device.readies.get(),
            i,
            "poll(false) asked the poll callback"
        );
    }
    assert_eq!(
        f.ctx.stats().waits,
        before.waits,
        "no wait while the poll callbacks cover every fd"
    );

    // Readiness that the poll callback does not report.
    device.ev.set();
    f.clock().advance(Duration::from_micros(50));
    assert!(f.ctx.poll(false).unwrap());
    assert_eq!(
        device.reads.get(),
        2,
        "seen by the kernel check within 50 us"
    );
    f.ctx.set_fd_handler(&*device.ev, None).unwrap();
}

/// A handler without a `poll` callback, made ready by another thread while
/// the loop is in its poll window, is dispatched without a blocking wait: the
/// window peeks at the monitor. With polling off, the same needs one.
///
/// On a manual clock, so that no step depends on how fast the threads run:
/// the writer sets the fd once the loop has read the clock a thousand times,
/// which it does only while it spins in the window, and the window lasts
/// seconds of real time (40 million readings) unless the peek ends it.
pub fn plain_handler_served_in_the_poll_window(h: &Harness) {
    for polling in [true, false] {
        let f = h.fixture_manual();
        f.clock().auto_advance(Duration::from_nanos(100));
        // A huge growth factor: one iteration that blocked 2 ms takes the
        // poll time from 4 us to 4 s.
        let max_ns = if polling { 10_000_000_000 } else { 0 };
        f.ctx.set_poll_params(PollParams {
            max_ns,
            grow: 1_000_000,
            shrink: 0,
        });
        let ev = std::sync::Arc::new(f.event());
        let reads = Count::new();
        f.ctx
            .set_fd_handler(&*ev, Some(clearing(&ev, &reads)))
            .unwrap();
        let _watchdog = Watchdog::arm(
            "the plain handler to be served from the poll window",
            Duration::from_secs(60),
        );
        let serve = |want: usize| {
            while reads.get() < want {
                f.ctx.poll(true).unwrap();
            }
        };
        f.set_wait_time(Duration::from_micros(1));
        ev.set();
        serve(1); // joins the polled list at 4 us
        f.set_wait_time(Duration::from_millis(2));
        ev.set();
        serve(2); // blocked 2 ms: the poll time grows to 4 s
        if polling {
            assert_eq!(f.ctx.poll_time(&*ev), Some(Duration::from_secs(4)));
        }

        f.set_wait_time(Duration::from_micros(1));
        let before = f.ctx.stats();
        let (writer_ev, clock) = (std::sync::Arc::clone(&ev), f.clock().clone());
        let writer = std::thread::spawn(move || {
            if polling {
                let start = clock.now_ns();
                while clock.now_ns() < start + 100_000 {
                    std::thread::yield_now();
                }
            }
            writer_ev.set();
        });
        serve(3);
        writer.join().unwrap();
        let after = f.ctx.stats();
        let blocked = after.blocking_waits - before.blocking_waits;
        if polling {
            assert_eq!(blocked, 0, "served by polling: {after:?}");
            assert_eq!(after.poll_hits - before.poll_hits, 1, "{after:?}");
        } else {
            assert_eq!(blocked, 1, "polling off: served after a blocking wait");
        }
        f.ctx.set_fd_handler(&*ev, None).unwrap();
    }
}

/// A polled handler whose `poll` finds no work for 7 s, and one without a
/// `poll` callback that is not dispatched for 7 s, leave the polled list
/// (manual clock); `poll_begin` and `poll_end` still pair up, and a handler
/// rejoins once it fires again.
pub fn idle_polled_handlers_leave_after_7s(h: &Harness) {
    let f = polling_fixture(h);
    let device = Device::register(&f);
    f.set_wait_time(Duration::from_micros(1));
    device.kick(&f);
    let reader = Rc::new(f.event());
    let e = Rc::clone(&reader);
    f.ctx
        .set_fd_handler(
            &*reader,
            Some(FdHandler::new().on_read(move |_| {
                e.clear();
            })),
        )
        .unwrap();
    reader.set();
    f.ctx.poll(true).unwrap();
    assert_eq!(f.ctx.stats().polled_handlers, 2);
    let timer = f.ctx.timer(|_| {});
    for _ in 0..3 {
        f.clock().advance(Duration::from_secs(4));
        timer.arm_in(Duration::from_micros(100));
        f.ctx.poll(true).unwrap();
    }
    assert_eq!(
        f.ctx.poll_time(&*device.ev),
        None,
        "the device's poll found nothing for 7 s"
    );
    assert_eq!(
        f.ctx.poll_time(&*reader),
        None,
        "the reader was not dispatched for 7 s"
    );
    assert_eq!(f.ctx.stats().polled_handlers, 0);
    assert_eq!(
        device.begins.get(),
        device.ends.get(),
        "poll_begin and poll_end pair up"
    );
    device.kick(&f);
    assert!(
        f.ctx.poll_time(&*device.ev).is_some(),
        "back on the list once it fired"
    );
    f.ctx.set_fd_handler(&*device.ev, None).unwrap();
    f.ctx.set_fd_handler(&*reader, None).unwrap();
}

/// A handler that joins the polled list after the others leaves it 7 s
/// after it joined, not 7 s after the others' deadlines have been looked
/// at (manual clock).
pub fn a_handler_that_joins_later_leaves_7s_after_it_joined(h: &Harness) {
    let f = polling_fixture(h);
    f.set_wait_time(Duration::from_micros(1));
    let timer = f.ctx.timer(|_| {});
    let pass = |advance: Duration| {
        f.clock().advance(advance);
        timer.arm_in(Duration::from_micros(100));
        f.ctx.poll(true).unwrap();
    };
    let early = Device::register(&f);
    early.kick(&f);
    pass(Duration::ZERO);
    let late = Device::register(&f);
    pass(Duration::from_secs(4));
    late.kick(&f);
    pass(Duration::ZERO);
    assert_eq!(f.ctx.stats().polled_handlers, 2, "both on the list");

    pass(Duration::from_millis(7500));
    assert_eq!(f.ctx.poll_time(&*early.ev), None, "idle for 11.5 s");
    assert_eq!(
        f.ctx.poll_time(&*late.ev),
        None,
        "idle for 7.5 s since it joined"
    );
    f.ctx.set_fd_handler(&*early.ev, None).unwrap();
    f.ctx.set_fd_handler(&*late.ev, None).unwrap();
}
