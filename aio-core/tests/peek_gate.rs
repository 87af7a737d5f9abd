//! The gate on busy-poll windows that must peek at the monitor with system
//! calls: one slow peek refuses one window, not the next 63; the refusals
//! show in the stats; and what a submission costs is not taken for what a
//! peek costs. All on a manual clock, with peek costs the test sets.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::time::Duration;

use std::os::fd::AsRawFd;
use std::sync::Arc;

use aio_core::testing::{SimMonitor, SimWorld, TestMonitor};
use aio_core::{
    AioContext, ContextBuilder, EventNotifier, FdHandler, FdMonitor, ManualClock, Pending,
    PollParams, Readiness, Stats,
};

const CHEAP_NS: u64 = 500;
/// What the clock's own step adds to a measured cost.
const STEP_NS: u64 = 10;
/// Dearer than an eighth of `PollParams::IOTHREAD.max_ns` (4096 ns).
const DEAR_NS: u64 = 9_000;

#[derive(Default)]
struct Script {
    peek_costs: VecDeque<u64>,
    /// Whether requests are queued (as after every wait that found events).
    queued: bool,
    submit_ns: u64,
    peeks: usize,
}

/// A sim monitor that cannot show readiness, on a manual clock: a wait that
/// times out moves the clock by its timeout, and a zero-timeout wait costs
/// the next scripted cost (a pure peek) or `submit_ns` (when it hands over
/// requests queued since the last wait, which it says with
/// `Pending::Submit`, as the io_uring monitor does in every mode).
fn scripted(
    inner: SimMonitor,
    clock: ManualClock,
    script: &Rc<RefCell<Script>>,
) -> TestMonitor<SimMonitor> {
    let (on_update, on_wait, on_pending) =
        (Rc::clone(script), Rc::clone(script), Rc::clone(script));
    TestMonitor::new(inner)
        .on_update(move |inner, fd, old, new| {
            on_update.borrow_mut().queued = true;
            inner.update(fd, old, new)
        })
        .on_wait(move |inner, events, timeout| {
            let before = events.len();
            inner.wait(events, timeout)?;
            let mut script = on_wait.borrow_mut();
            let cost = match timeout {
                Some(Duration::ZERO) if script.queued => script.submit_ns,
                Some(Duration::ZERO) => {
                    script.peeks += 1;
                    script.peek_costs.pop_front().unwrap_or(CHEAP_NS)
                }
                Some(t) if events.len() == before => t.as_nanos() as u64,
                _ => 0,
            };
            script.queued = events.len() > before;
            clock.advance(Duration::from_nanos(cost));
            Ok(())
        })
        .on_pending(move |_| {
            if on_pending.borrow().queued {
                Pending::Submit
            } else {
                Pending::Unknown
            }
        })
}

struct Setup {
    ctx: AioContext,
    script: Rc<RefCell<Script>>,
    world: Arc<SimWorld>,
    /// The plain handler's fd (its readiness lives in the world).
    plain: EventNotifier,
    tick: aio_core::Timer,
}

/// A context with `PollParams::IOTHREAD` and one plain handler (no `poll`
/// callback) that has fired once, so that it is on the polled list with a
/// poll time of 4 us and every window must peek for it.
fn setup(submit_ns: u64) -> Setup {
    let world = SimWorld::new();
    let clock = ManualClock::new();
    clock.auto_advance(Duration::from_nanos(STEP_NS));
    let script = Rc::new(RefCell::new(Script {
        submit_ns,
        ..Script::default()
    }));
    let monitor = scripted(world.monitor().virtual_time(true), clock.clone(), &script);
    let ctx = ContextBuilder::new(Box::new(monitor))
        .clock(clock)
        .poll_params(PollParams::IOTHREAD)
        .build()
        .unwrap();
    let plain = EventNotifier::new().unwrap();
    let (w, fd) = (Arc::clone(&world), plain.as_raw_fd());
    ctx.set_fd_handler(
        &plain,
        Some(FdHandler::new().on_read(move |_| {
            w.clear(fd);
        })),
    )
    .unwrap();
    world.set_ready(fd, Readiness::READABLE);
    assert!(ctx.poll(true).unwrap());
    assert_eq!(ctx.poll_time(&plain), Some(Duration::from_micros(4)));
    // Blocking waits end at this timer (virtual time), so nothing hangs.
    let tick = ctx.timer(|_| {});
    Setup {
        ctx,
        script,
        world,
        plain,
        tick,
    }
}

/// One blocking iteration that finds nothing (it ends at a timer 1 ms out);
/// returns the stats after it.
fn idle_iteration(s: &Setup) -> Stats {
    s.tick.arm_in(Duration::from_millis(1));
    s.ctx.poll(true).unwrap();
    s.ctx.stats()
}

#[test]
fn one_slow_peek_refuses_one_window_and_the_next_probes() {
    let s = setup(0);
    s.script.borrow_mut().peek_costs.push_back(DEAR_NS);

    let first = idle_iteration(&s);
    assert_eq!(first.peek_cost_ns, DEAR_NS + STEP_NS, "{first:?}");
    assert_eq!(first.poll_refusals, 0, "unmeasured: the window ran");

    let refused = idle_iteration(&s);
    assert_eq!(refused.poll_refusals, 1, "{refused:?}");
    assert_eq!(refused.poll_misses, first.poll_misses, "no window ran");

    let probe = idle_iteration(&s);
    assert_eq!(probe.poll_refusals, 1, "the window after a refusal probes");
    assert_eq!(probe.poll_misses, first.poll_misses + 1);
    assert_eq!(
        probe.peek_cost_ns,
        CHEAP_NS + STEP_NS,
        "the cheap peek outvotes the slow one"
    );

    for _ in 0..70 {
        let stats = idle_iteration(&s);
        assert_eq!(stats.poll_refusals, 1, "cheap peeks: every window runs");
    }
    assert!(s.world.readiness(s.plain.as_raw_fd()).is_empty());
}

#[test]
fn while_peeks_stay_slow_probes_back_off_to_one_window_in_64() {
    let s = setup(0);
    s.script.borrow_mut().peek_costs.extend([DEAR_NS; 1000]);
    let mut ran = Vec::new();
    let mut misses = idle_iteration(&s).poll_misses;
    for i in 0..300 {
        let stats = idle_iteration(&s);
        if stats.poll_misses > misses {
            ran.push(i);
        }
        misses = stats.poll_misses;
    }
    let gaps: Vec<_> = ran.windows(2).map(|w| w[1] - w[0] - 1).collect();
    assert_eq!(gaps[..6], [2, 4, 8, 16, 32, 64], "{ran:?}");
    assert!(gaps[6..].iter().all(|&g| g == 64), "{gaps:?}");
}

/// The regression behind the busy-poll test that hung on io_uring without
/// a task-run flag: the first wait of a window also handed the re-arm of
/// the last completion to the kernel, cost several microseconds, and shut
/// the window. Submissions now go first, in a wait of their own that is
/// not measured.
#[test]
fn a_submission_is_not_measured_as_a_peek() {
    let s = setup(DEAR_NS);
    for _ in 0..100 {
        // Something was ready: the monitor queues its re-arm, and the next
        // window starts with a submission.
        s.script.borrow_mut().queued = true;
        let stats = idle_iteration(&s);
        assert_eq!(stats.poll_refusals, 0, "{stats:?}");
        assert_eq!(stats.peek_cost_ns, CHEAP_NS + STEP_NS, "{stats:?}");
    }
    assert!(s.script.borrow().peeks > 0);
}
