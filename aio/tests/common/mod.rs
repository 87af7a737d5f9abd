//! What the reliability tests share: the monitors to run on, a harness and
//! a fault-injecting context per monitor, and a watchdog that ends a hung
//! test binary instead of letting it hang CI.

#![allow(dead_code)]

use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use aio_core::testing::{
    Count, DropProbe, Faults, Harness, SimWorld, TestEvent, TestMonitor, Watchdog,
    assert_still_works,
};
use aio_core::{AioContext, FdHandler, FdMonitor};

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
        TestEvent::new(self.world.as_ref())
    }

    /// How many registrations the monitor should hold: the handlers and
    /// the context's own notifier.
    pub(crate) fn expected_held(&self) -> usize {
        self.ctx.handler_count() + 1
    }
}

/// An fd of a [`Rig`].
pub(crate) type Ev = TestEvent;

/// Aborts the whole test binary (with a message) if it is not dropped
/// within `limit`: a test that hangs fails CI instead of stalling it.
pub(crate) fn watchdog(what: &'static str, limit: Duration) -> Watchdog {
    Watchdog::arm(what, limit)
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
/// holds exactly what the context registered, before and after.
pub(crate) fn still_works(rig: &Rig) {
    for _ in 0..2 {
        assert_eq!(
            rig.faults.held(),
            rig.expected_held(),
            "a registration was lost or leaked"
        );
        assert_still_works(&rig.ctx, rig.world.as_ref());
    }
}
