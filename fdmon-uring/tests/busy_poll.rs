//! Busy polling sees io_uring readiness: an fd without a `poll` callback,
//! made ready by another thread while the loop spins in its poll window, is
//! dispatched without a blocking wait; and in the modes that show
//! readiness, the monitor shows it without a system call.

mod common;

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use aio_core::testing::Watchdog;
use aio_core::{
    ContextBuilder, EventNotifier, FdHandler, FdMonitor, Interest, ManualClock, Pending,
    PollParams, Registration, Stats, Token,
};
use fdmon_uring::TaskRun;

const IDLE: u8 = 0;
const WRITE_NOW: u8 = 1;
const WRITTEN: u8 = 2;

/// How long a handshake may take before the test fails, saying what it
/// waited for (only a broken loop or kernel takes more than a moment).
const PATIENCE: Duration = Duration::from_secs(20);

/// Spins until `state` holds `want`; panics after [`PATIENCE`].
fn spin_until(state: &AtomicU8, want: u8) {
    let start = Instant::now();
    while state.load(Ordering::Acquire) != want {
        assert!(start.elapsed() < PATIENCE, "waited for state {want}");
        std::hint::spin_loop();
    }
}

/// What one window served: the stats and kernel entries it cost.
struct Served {
    stats_before: Stats,
    stats_after: Stats,
    enters: u64,
}

/// A context on a manual clock (every reading moves it by 100 ns, so the
/// windows, and what a peek is measured to cost, do not depend on the
/// machine's speed) with `PollParams::IOTHREAD`, a device whose `poll`
/// callback never finds work (it keeps the window open once it has a poll
/// time), and a plain eventfd handler without a `poll` callback. Another
/// thread writes the plain eventfd while the loop is in its window, by
/// handshake: the device's `poll` callback asks for the write and waits for
/// it, and where the ring shows readiness, the core's next look at the ring
/// (`pending`) waits until the ring shows the completion (task work posts
/// it a moment after the write; a timer tick runs it at the latest). Where the ring cannot show readiness, the window
/// peeks after that callback returns.
fn serve_in_window(mode: TaskRun) -> Served {
    let clock = ManualClock::new();
    clock.auto_advance(Duration::from_nanos(100));
    let state = Arc::new(AtomicU8::new(IDLE));
    let ask = Rc::new(Cell::new(false));
    // Set once the write is done: the core's next look at the ring waits
    // until the ring shows the completion.
    let written = Rc::new(Cell::new(false));
    let (monitor, seen) = common::watched(mode);
    let w = Rc::clone(&written);
    let monitor = monitor.on_pending(move |ring| {
        let start = Instant::now();
        while w.get() && mode.shows_readiness() && ring.pending() != Pending::Yes {
            assert!(
                start.elapsed() < PATIENCE,
                "{mode:?}: the completion never showed"
            );
            std::hint::spin_loop();
        }
        w.set(false);
        ring.pending()
    });
    let ctx = ContextBuilder::new(Box::new(monitor))
        .clock(clock.clone())
        .poll_params(PollParams::IOTHREAD)
        .build()
        .unwrap();

    let device = Rc::new(EventNotifier::new().unwrap());
    let (d, s, a, w) = (
        Rc::clone(&device),
        Arc::clone(&state),
        Rc::clone(&ask),
        Rc::clone(&written),
    );
    let handler = FdHandler::new()
        .on_read(move |_| {
            d.test_and_clear().unwrap();
        })
        .on_poll(
            move || {
                if a.replace(false) {
                    s.store(WRITE_NOW, Ordering::Release);
                    spin_until(&s, WRITTEN);
                    w.set(true);
                }
                false
            },
            |_| {},
        );
    ctx.set_fd_handler(&*device, Some(handler)).unwrap();

    let plain = Arc::new(EventNotifier::new().unwrap());
    let reads = Rc::new(Cell::new(0));
    let (p, r) = (Arc::clone(&plain), Rc::clone(&reads));
    ctx.set_fd_handler(
        &*plain,
        Some(FdHandler::new().on_read(move |_| {
            p.test_and_clear().unwrap();
            r.set(r.get() + 1);
        })),
    )
    .unwrap();

    // The device fires: it joins the polled list, and after one short
    // iteration its poll time starts at 4 us.
    device.set().unwrap();
    assert!(ctx.poll(true).unwrap());
    assert_eq!(ctx.poll_time(&*device), Some(Duration::from_micros(4)));
    // A non-blocking iteration asks the kernel (the plain fd shows in no
    // `poll` callback), which hands the device's re-arm over.
    ctx.poll(false).unwrap();
    assert_ne!(seen.shown(), Some(Pending::Submit), "{mode:?}");

    let writer = {
        let (state, plain) = (Arc::clone(&state), Arc::clone(&plain));
        std::thread::spawn(move || {
            spin_until(&state, WRITE_NOW);
            plain.set().unwrap();
            state.store(WRITTEN, Ordering::Release);
        })
    };
    let watchdog = Watchdog::arm(format!("{mode:?}: the plain fd to be served"), PATIENCE);
    let stats_before = ctx.stats();
    let enters_before = seen.enters();
    ask.set(true);
    while reads.get() == 0 {
        ctx.poll(true).unwrap();
    }
    drop(watchdog);
    let served = Served {
        stats_before,
        stats_after: ctx.stats(),
        enters: seen.enters() - enters_before,
    };
    writer.join().unwrap();
    ctx.set_fd_handler(&*plain, None).unwrap();
    ctx.set_fd_handler(&*device, None).unwrap();
    served
}

/// Every mode serves the plain fd in the window, without blocking: where
/// readiness shows in user space the window sees it in the rings, elsewhere
/// the window peeks with zero-timeout waits (system calls).
#[test]
fn a_plain_fd_made_ready_in_the_window_is_served_without_blocking() {
    for mode in TaskRun::ALL {
        let Served {
            stats_before: before,
            stats_after: after,
            enters,
        } = serve_in_window(mode);
        assert_eq!(
            after.blocking_waits, before.blocking_waits,
            "{mode:?}: served without a blocking wait: {after:?}"
        );
        assert_eq!(after.poll_hits - before.poll_hits, 1, "{mode:?}: {after:?}");
        assert_eq!(after.poll_refusals, 0, "{mode:?}: {after:?}");
        assert_eq!(
            after.iterations - before.iterations,
            1,
            "{mode:?}: in one iteration"
        );
        // Interrupt mode: the completion was posted by the interrupt, and
        // collecting it needs no system call at all. The flag modes enter
        // once, to run the task work the flag announced (cooperative task
        // work may also have run on the way back from a timer tick); the
        // others peek.
        match mode {
            TaskRun::Interrupt => assert_eq!(enters, 0, "{mode:?}"),
            TaskRun::CooperativeFlag => assert!(enters <= 1, "{mode:?}: {enters}"),
            TaskRun::DeferredFlag => assert_eq!(enters, 1, "{mode:?}"),
            _ => assert!(enters >= 1, "{mode:?}"),
        }
    }
}

/// On the bare monitor: once its requests are in, another thread's write
/// turns `pending()` to `Yes` without any call into the kernel by the
/// spinning thread, in the modes that show readiness; the others cannot
/// tell.
#[test]
fn pending_shows_another_threads_write_without_a_system_call() {
    for mode in TaskRun::ALL {
        let mut m = common::monitor(mode);
        let n = Arc::new(EventNotifier::new().unwrap());
        let reg = Registration {
            token: Token(1),
            interest: Interest::READABLE,
        };
        m.update(n.as_raw_fd(), None, Some(reg)).unwrap();
        let mut events = Vec::new();
        m.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events, []);
        let idle = if mode.shows_readiness() {
            aio_core::Pending::No
        } else {
            aio_core::Pending::Unknown
        };
        assert_eq!(m.pending(), idle, "{mode:?}");

        let enters = m.enters();
        let writer = Arc::clone(&n);
        std::thread::spawn(move || writer.set().unwrap())
            .join()
            .unwrap();
        // Where the ring shows readiness, the completion shows up a moment
        // after the write (task work posts it); elsewhere no number of looks
        // at the ring tells.
        let start = Instant::now();
        let mut looks = 0u32;
        let mut seen = m.pending();
        while seen != aio_core::Pending::Yes && (mode.shows_readiness() || looks < 100_000) {
            assert!(
                start.elapsed() < PATIENCE,
                "{mode:?}: the completion never showed"
            );
            std::hint::spin_loop();
            seen = m.pending();
            looks += 1;
        }
        assert_eq!(m.enters(), enters, "pending() made no system call");
        if !mode.shows_readiness() {
            assert_eq!(seen, aio_core::Pending::Unknown, "{mode:?}");
        }
        m.wait(&mut events, Some(Duration::ZERO)).unwrap();
        assert_eq!(events.len(), 1, "{mode:?}: {events:?}");
    }
}
