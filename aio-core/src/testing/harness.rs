//! The harness the conformance suite runs on: it makes contexts on the
//! monitor under test (or on the sim), on the real clock or a manual one,
//! and test fds that the test can make readable.

use std::cell::Cell;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::TestMonitor;
use super::sim::{SimDoorbell, SimWorld};
use crate::{AioContext, ContextBuilder, EventNotifier, FdMonitor, ManualClock, Readiness, Timer};

type MakeMonitor = Rc<dyn Fn() -> io::Result<Box<dyn FdMonitor>>>;

/// Makes fixtures on one kind of monitor.
#[derive(Clone)]
pub struct Harness {
    kind: Kind,
    /// Contexts move to this monitor at this many handlers.
    upgrade: Option<(usize, &'static str, MakeMonitor)>,
    /// Whether [`Fixture::poll`] drives the context as another event loop
    /// would.
    outer_loop: bool,
}

#[derive(Clone)]
enum Kind {
    Monitor(MakeMonitor),
    Sim { observable: bool },
}

impl Harness {
    /// A harness on the monitors that `make` returns.
    ///
    /// ```
    /// use aio_core::testing::{Harness, SleepMonitor};
    ///
    /// let h = Harness::new(|| Ok(Box::new(SleepMonitor::new())));
    /// let f = h.fixture();
    /// assert_eq!(f.ctx.backend().name, "sleep");
    /// ```
    pub fn new(make: impl Fn() -> io::Result<Box<dyn FdMonitor>> + 'static) -> Harness {
        Harness {
            kind: Kind::Monitor(Rc::new(make)),
            upgrade: None,
            outer_loop: false,
        }
    }

    /// Makes every fixture's context plan an [`Upgrade`](crate::Upgrade)
    /// to the monitor `make` sets up once `at_handlers` fds are registered,
    /// so that the cases cross it (use a small number).
    pub fn upgrading_at(
        mut self,
        at_handlers: usize,
        name: &'static str,
        make: impl Fn() -> io::Result<Box<dyn FdMonitor>> + 'static,
    ) -> Harness {
        self.upgrade = Some((at_handlers, name, Rc::new(make)));
        self
    }

    /// A harness on the simulated monitor, which needs a system call to
    /// report readiness (like poll and epoll).
    pub fn sim() -> Harness {
        Harness {
            kind: Kind::Sim { observable: false },
            upgrade: None,
            outer_loop: false,
        }
    }

    /// A harness on the simulated monitor in its io_uring-like mode, which
    /// shows readiness without a system call.
    pub fn sim_observable() -> Harness {
        Harness {
            kind: Kind::Sim { observable: true },
            upgrade: None,
            outer_loop: false,
        }
    }

    /// Makes [`Fixture::poll`] drive the context as another event loop
    /// would: `prepare`, sleep on the loop fd, `check`, `dispatch` (the
    /// monitor must have a loop fd; the sim has none).
    pub fn driven_by_outer_loop(mut self) -> Harness {
        self.outer_loop = true;
        self
    }

    /// A fixture on the monotonic clock.
    pub fn fixture(&self) -> Fixture {
        self.build(None)
    }

    /// A fixture on a manual clock: time moves only when the test moves it,
    /// or when a wait times out (by the timeout), or returns events (by the
    /// fixture's [wait time](Fixture::set_wait_time)).
    pub fn fixture_manual(&self) -> Fixture {
        self.build(Some(ManualClock::new()))
    }

    fn build(&self, clock: Option<ManualClock>) -> Fixture {
        let (monitor, world): (Box<dyn FdMonitor>, _) = match &self.kind {
            Kind::Monitor(make) => (
                make().expect("the monitor under test could not be made"),
                None,
            ),
            Kind::Sim { observable } => {
                let world = SimWorld::new();
                let monitor = world
                    .monitor()
                    .observable(*observable)
                    .virtual_time(clock.is_some());
                (Box::new(monitor), Some(world))
            }
        };
        let wait_ns = Arc::new(AtomicU64::new(0));
        let mut builder = match &clock {
            Some(clock) => ContextBuilder::new(Box::new(clocked(
                monitor,
                clock.clone(),
                Arc::clone(&wait_ns),
            )))
            .clock(clock.clone()),
            None => ContextBuilder::new(monitor),
        };
        if let Some((at_handlers, name, make)) = &self.upgrade {
            let make = Rc::clone(make);
            builder = builder.upgrade(crate::Upgrade::new(*at_handlers, name, move || make()));
        }
        if let Some(world) = &world {
            let doorbell =
                SimDoorbell::new(Arc::clone(world)).expect("no eventfd for the sim doorbell");
            builder = builder.doorbell(Box::new(doorbell));
        }
        Fixture {
            ctx: builder.build().expect("the context could not be made"),
            world,
            clock,
            wait_ns,
            outer_loop: self.outer_loop,
            outer_sleeps: Cell::new(0),
        }
    }
}

impl fmt::Debug for Harness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Monitor(_) => f.write_str("Harness(monitor)"),
            Kind::Sim { observable } => write!(f, "Harness(sim, observable: {observable})"),
        }
    }
}

/// A context under test, with what the test needs around it.
pub struct Fixture {
    /// The context.
    pub ctx: AioContext,
    world: Option<Arc<SimWorld>>,
    clock: Option<ManualClock>,
    wait_ns: Arc<AtomicU64>,
    outer_loop: bool,
    /// Sleeps of the outer loop with a non-zero timeout.
    outer_sleeps: Cell<u64>,
}

impl Fixture {
    /// One turn of the loop: [`AioContext::poll`], or, on a harness
    /// [driven by an outer loop](Harness::driven_by_outer_loop), what such a
    /// loop does: `prepare`, sleep on the loop fd for at most the timeout
    /// (none when not `blocking`), `check`, and `dispatch` if there is work.
    pub fn poll(&self, blocking: bool) -> io::Result<bool> {
        if !self.outer_loop {
            return self.ctx.poll(blocking);
        }
        let timeout = self.ctx.prepare()?;
        let timeout = if blocking {
            timeout
        } else {
            Some(Duration::ZERO)
        };
        let woke = sleep_on(self.ctx.loop_fd()?, timeout)?;
        if timeout != Some(Duration::ZERO) {
            self.outer_sleeps.set(self.outer_sleeps.get() + 1);
        }
        if let (false, Some(clock), Some(timeout)) = (woke, &self.clock, timeout) {
            clock.advance(timeout);
        }
        if self.ctx.check()? {
            self.ctx.dispatch()
        } else {
            Ok(false)
        }
    }

    /// Whether [`poll`](Fixture::poll) drives the context as an outer loop.
    pub fn is_outer_loop(&self) -> bool {
        self.outer_loop
    }

    /// Waits that may have slept: the context's own
    /// ([`Stats::blocking_waits`](crate::Stats)), or the outer loop's.
    pub fn blocking_waits(&self) -> u64 {
        self.ctx.stats().blocking_waits + self.outer_sleeps.get()
    }

    /// A new fd that the test can make readable.
    pub fn event(&self) -> TestEvent {
        TestEvent::new(self.world.as_ref())
    }

    /// The manual clock.
    ///
    /// # Panics
    ///
    /// If the fixture runs on the monotonic clock.
    pub fn clock(&self) -> &ManualClock {
        self.clock
            .as_ref()
            .expect("this fixture runs on the monotonic clock")
    }

    /// How much the manual clock moves during a wait that returns events
    /// (default zero): the time the loop "blocked".
    pub fn set_wait_time(&self, wait: Duration) {
        self.wait_ns
            .store(crate::clock::saturating_ns(wait), Ordering::SeqCst);
    }

    /// The simulated world, on a sim fixture.
    pub fn world(&self) -> Option<&Arc<SimWorld>> {
        self.world.as_ref()
    }

    /// Whether this fixture runs on the simulated monitor.
    pub fn is_sim(&self) -> bool {
        self.world.is_some()
    }

    /// A timer that fails the test (by panicking out of `poll`) if the loop
    /// is still waiting after `limit`: a lost wake-up fails instead of
    /// hanging.
    pub fn watchdog(&self, limit: Duration) -> Timer {
        let timer = self
            .ctx
            .timer(move |_| panic!("watchdog: the loop was still waiting after {limit:?}"));
        timer.arm_in(limit);
        timer
    }
}

/// A test fd: an eventfd, or on the sim an fd whose readiness lives in the
/// simulated world.
pub struct TestEvent {
    notifier: EventNotifier,
    world: Option<Arc<SimWorld>>,
}

impl TestEvent {
    /// A new fd whose readiness lives in `world` (for a context on the
    /// sim), or an eventfd's own (`None`).
    ///
    /// # Panics
    ///
    /// If no eventfd can be had.
    pub fn new(world: Option<&Arc<SimWorld>>) -> TestEvent {
        TestEvent {
            notifier: EventNotifier::new().expect("no eventfd for a test event"),
            world: world.cloned(),
        }
    }

    /// Makes the fd readable.
    pub fn set(&self) {
        match &self.world {
            Some(world) => world.set_ready(self.as_raw_fd(), Readiness::READABLE),
            None => self.notifier.set().expect("eventfd write failed"),
        }
    }

    /// Makes the fd not readable; returns whether it was.
    pub fn clear(&self) -> bool {
        match &self.world {
            Some(world) => world.clear(self.as_raw_fd()).contains(Readiness::READABLE),
            None => self.notifier.test_and_clear().expect("eventfd read failed"),
        }
    }
}

impl Drop for TestEvent {
    /// A closed fd's readiness goes with it: the sim keys readiness by
    /// number, so it is forgotten for the next fd that gets the number.
    fn drop(&mut self) {
        if let Some(world) = &self.world {
            world.clear(self.as_raw_fd());
        }
    }
}

impl AsRawFd for TestEvent {
    fn as_raw_fd(&self) -> RawFd {
        self.notifier.as_raw_fd()
    }
}

/// A monitor for manual-clock fixtures: a wait that times out moves the
/// clock by its timeout, one that returns events by the wait time.
fn clocked(
    monitor: Box<dyn FdMonitor>,
    clock: ManualClock,
    wait_ns: Arc<AtomicU64>,
) -> TestMonitor<Box<dyn FdMonitor>> {
    TestMonitor::new(monitor).on_wait(move |inner, events, timeout| {
        let before = events.len();
        inner.wait(events, timeout)?;
        match timeout {
            Some(timeout) if events.len() == before => clock.advance(timeout),
            _ => clock.advance(Duration::from_nanos(wait_ns.load(Ordering::SeqCst))),
        }
        Ok(())
    })
}

/// A shared counter for callbacks.
#[derive(Clone, Debug, Default)]
pub struct Count(Rc<Cell<usize>>);

impl Count {
    /// A counter at zero.
    pub fn new() -> Count {
        Count::default()
    }

    /// Adds one.
    pub fn hit(&self) {
        self.0.set(self.0.get() + 1);
    }

    /// The count.
    pub fn get(&self) -> usize {
        self.0.get()
    }
}

/// Counts its own drops into a [`Count`]: move one into a closure to see
/// when (and that only once) the closure is dropped.
#[derive(Debug)]
pub struct DropProbe(Count);

impl DropProbe {
    /// A probe that counts into `count`.
    pub fn new(count: &Count) -> DropProbe {
        DropProbe(count.clone())
    }
}

impl Drop for DropProbe {
    fn drop(&mut self) {
        self.0.hit();
    }
}

/// Sleeps until `fd` is readable or `timeout` passes; returns whether it
/// became readable.
fn sleep_on(fd: std::os::fd::OwnedFd, timeout: Option<Duration>) -> io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    let timeout = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    loop {
        match rustix::event::poll(&mut fds, timeout.as_ref()) {
            Ok(n) => return Ok(n > 0),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}
