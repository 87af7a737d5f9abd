//! What the reliability tests share: the monitors to run on, a harness and
//! a fault-injecting context per monitor, and a watchdog that ends a hung
//! test binary instead of letting it hang CI.

#![allow(dead_code)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use std::rc::Rc;

use aio_core::testing::{Count, DropProbe, Faults, Harness, SimWorld, TestMonitor};
use aio_core::{AioContext, EventNotifier, FdHandler, FdMonitor, Readiness};

/// A monitor the tests run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Poll,
    Epoll,
    Uring,
    /// The simulated monitor (readiness set by the test).
    Sim,
}

/// A new monitor of a real kind.
pub(crate) fn open(kind: Kind) -> io::Result<Box<dyn FdMonitor>> {
    Ok(match kind {
        Kind::Poll => Box::new(fdmon_poll::PollMonitor::new()),
        Kind::Epoll => Box::new(fdmon_epoll::EpollMonitor::new()?),
        Kind::Uring => Box::new(fdmon_uring::UringMonitor::new()?),
        Kind::Sim => panic!("the sim is made through its world"),
    })
}

/// The harness of the testing module on this kind.
pub(crate) fn harness(kind: Kind) -> Harness {
    match kind {
        Kind::Sim => Harness::sim(),
        real => Harness::new(move || open(real)),
    }
}

/// Emits `mod poll`, `mod epoll`, `mod io_uring` (and `mod sim` with
/// `sim:` first) with one `#[test]` per case, each calling `super::case(kind)`.
#[macro_export]
macro_rules! on_every_monitor {
    (sim: $($case:ident),* $(,)?) => {
        $crate::on_every_monitor!($($case),*);
        mod sim {
            $( #[test] fn $case() { super::$case($crate::common::Kind::Sim); } )*
        }
    };
    ($($case:ident),* $(,)?) => {
        mod poll {
            $( #[test] fn $case() { super::$case($crate::common::Kind::Poll); } )*
        }
        mod epoll {
            $( #[test] fn $case() { super::$case($crate::common::Kind::Epoll); } )*
        }
        mod io_uring {
            $( #[test] fn $case() { super::$case($crate::common::Kind::Uring); } )*
        }
    };
}

/// A context on `kind` wrapped in a [`TestMonitor`], with fds that the
/// test can make readable (on the sim, through its world).
pub(crate) struct Rig {
    pub(crate) ctx: AioContext,
    pub(crate) faults: Faults,
    pub(crate) world: Option<Arc<SimWorld>>,
}

impl Rig {
    pub(crate) fn new(kind: Kind) -> Rig {
        let faults = Faults::new();
        let (inner, world): (Box<dyn FdMonitor>, _) = match kind {
            Kind::Sim => {
                let world = SimWorld::new();
                (Box::new(world.monitor()), Some(world))
            }
            real => (open(real).expect("the monitor under test"), None),
        };
        let monitor = TestMonitor::new(inner).faults(&faults);
        let ctx = AioContext::with_monitor(Box::new(monitor)).expect("the context");
        Rig { ctx, faults, world }
    }

    /// A new fd the test can make readable.
    pub(crate) fn event(&self) -> Ev {
        Ev {
            notifier: EventNotifier::new().expect("eventfd"),
            world: self.world.clone(),
        }
    }

    /// How many registrations the monitor should hold: the handlers and
    /// the context's own notifier.
    pub(crate) fn expected_held(&self) -> usize {
        self.ctx.handler_count() + 1
    }
}

/// An fd of a [`Rig`].
pub(crate) struct Ev {
    notifier: EventNotifier,
    world: Option<Arc<SimWorld>>,
}

impl Ev {
    pub(crate) fn set(&self) {
        match &self.world {
            Some(world) => world.set_ready(self.as_raw_fd(), Readiness::READABLE),
            None => self.notifier.set().unwrap(),
        }
    }

    pub(crate) fn clear(&self) -> bool {
        match &self.world {
            Some(world) => world.clear(self.as_raw_fd()).contains(Readiness::READABLE),
            None => self.notifier.test_and_clear().unwrap(),
        }
    }
}

impl Drop for Ev {
    /// A closed file's readiness goes with it (the sim keys readiness by
    /// number, so forget it for the next fd that gets the number).
    fn drop(&mut self) {
        if let Some(world) = &self.world {
            world.clear(self.as_raw_fd());
        }
    }
}

impl AsRawFd for Ev {
    fn as_raw_fd(&self) -> RawFd {
        self.notifier.as_raw_fd()
    }
}

/// Aborts the whole test binary (with a message) if it is not dropped
/// within `limit`: a test that hangs fails CI instead of stalling it.
#[must_use = "the watchdog stops watching when dropped"]
pub(crate) struct Watchdog {
    _stop: mpsc::Sender<()>,
}

pub(crate) fn watchdog(what: &'static str, limit: Duration) -> Watchdog {
    let (stop, stopped) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(limit) {
            eprintln!("watchdog: {what} still running after {limit:?}; aborting");
            std::process::abort();
        }
    });
    Watchdog { _stop: stop }
}

/// A read handler that drains `ev` and counts its runs; its drop is counted
/// in `drops`.
pub(crate) fn reader(ev: &Rc<Ev>, runs: &Count, drops: &Count) -> FdHandler {
    let (ev, runs, probe) = (Rc::clone(ev), runs.clone(), DropProbe::new(drops));
    FdHandler::new().on_read(move |_| {
        let _ = &probe;
        ev.clear();
        runs.hit();
    })
}

/// The context still serves a new fd and a bottom half, and the monitor
/// holds exactly what the context registered.
pub(crate) fn still_works(rig: &Rig) {
    assert_eq!(
        rig.faults.held(),
        rig.expected_held(),
        "a registration was lost or leaked"
    );
    let ev = Rc::new(rig.event());
    let (runs, drops) = (Count::new(), Count::new());
    rig.ctx
        .set_fd_handler(&*ev, Some(reader(&ev, &runs, &drops)))
        .unwrap();
    let bh_runs = Count::new();
    let b = bh_runs.clone();
    let bh = rig.ctx.bh(move |_| b.hit());
    bh.schedule();
    ev.set();
    for _ in 0..3 {
        rig.ctx.poll(false).unwrap();
    }
    assert_eq!(
        (runs.get(), bh_runs.get()),
        (1, 1),
        "the context stopped working"
    );
    rig.ctx.set_fd_handler(&*ev, None).unwrap();
    assert_eq!(drops.get(), 1);
    assert_eq!(rig.faults.held(), rig.expected_held());
}
