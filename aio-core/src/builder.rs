//! `ContextBuilder`: a context's monitor, polling parameters, clock and
//! timer slack, set before it is built.

use std::cell::{Cell, RefCell};
use std::io;
use std::num::NonZeroU64;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::BackendInfo;
use crate::clock::{Clock, saturating_ns};
use crate::context::Inner;
use crate::doorbell::Doorbell;
use crate::migration::{Fallback, Migration, Upgrade};
use crate::monitor::FdMonitor;
use crate::polling::{PollParams, PollWindow};
use crate::shared::Shared;
use crate::{AioContext, EventNotifier, OpEngine, Remote};

/// Builds an [`AioContext`] on a monitor, with its polling parameters and
/// clock.
///
/// ```
/// use aio_core::{ContextBuilder, ManualClock, PollParams, testing::SleepMonitor};
///
/// let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
///     .poll_params(PollParams::IOTHREAD)
///     .clock(ManualClock::new())
///     .build()?;
/// assert_eq!(ctx.poll_params(), PollParams::IOTHREAD);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "a builder does nothing until build() is called"]
pub struct ContextBuilder {
    monitor: Box<dyn FdMonitor>,
    params: PollParams,
    clock: Clock,
    backend: Option<BackendInfo>,
    upgrade: Option<Upgrade>,
    fallback: Option<Fallback>,
    ops_fallback: Option<MakeEngine>,
    doorbell: Option<Box<dyn Doorbell>>,
    timer_slack: Option<Duration>,
}

/// Makes the fallback engine of a context, given the context's remote.
type MakeEngine = Box<dyn FnOnce(Remote) -> Box<dyn OpEngine>>;

/// The timer slack a context gives its thread by default, as QEMU does.
const DEFAULT_TIMER_SLACK: Duration = Duration::from_nanos(1);

impl AioContext {
    /// A context on `monitor`, with polling off and the monotonic clock.
    pub fn with_monitor(monitor: Box<dyn FdMonitor>) -> io::Result<AioContext> {
        ContextBuilder::new(monitor).build()
    }
}

impl ContextBuilder {
    /// A builder for a context on `monitor`.
    pub fn new(monitor: Box<dyn FdMonitor>) -> ContextBuilder {
        ContextBuilder {
            monitor,
            params: PollParams::default(),
            clock: Clock::monotonic(),
            backend: None,
            upgrade: None,
            fallback: None,
            ops_fallback: None,
            doorbell: None,
            timer_slack: Some(DEFAULT_TIMER_SLACK),
        }
    }

    /// Sets the timer slack of the calling thread (the home thread) when the
    /// context is built; `None` leaves it as it is.
    ///
    /// Linux lets a sleep in `ppoll` or `epoll_pwait2` end up to the thread's
    /// timer slack late (50 us by default) so that wake-ups can be batched;
    /// io_uring timeouts and timerfds are not affected. The default, 1 ns as
    /// in QEMU, makes sub-millisecond timers precise on every monitor, at the
    /// price of that batching for the whole thread.
    pub fn timer_slack(mut self, slack: Option<Duration>) -> ContextBuilder {
        self.timer_slack = slack;
        self
    }

    /// The name of the monitor the context will start on.
    pub fn monitor_name(&self) -> &'static str {
        self.monitor.name()
    }

    /// Sets the busy-polling parameters (default: no polling).
    pub fn poll_params(mut self, params: PollParams) -> ContextBuilder {
        self.params = params;
        self
    }

    /// Sets the clock (default: the monotonic clock).
    pub fn clock(mut self, clock: impl Into<Clock>) -> ContextBuilder {
        self.clock = clock.into();
        self
    }

    /// Sets the report of which backend runs the context and why (default:
    /// the monitor's name, [given by the program](crate::Selection::Given)).
    pub fn backend_info(mut self, info: BackendInfo) -> ContextBuilder {
        self.backend = Some(info);
        self
    }

    #[cfg(feature = "testing")]
    pub(crate) fn doorbell(mut self, doorbell: Box<dyn Doorbell>) -> ContextBuilder {
        self.doorbell = Some(doorbell);
        self
    }

    /// Plans a move to a better monitor once enough fds are registered:
    /// see [`Upgrade`].
    pub fn upgrade(mut self, upgrade: Upgrade) -> ContextBuilder {
        self.upgrade = Some(upgrade);
        self
    }

    /// Plans a move to the monitor `open` sets up (named `name` in reports)
    /// if the monitor's wait fails after setup: the context then goes on,
    /// on the fallback, instead of failing every `poll`. Used once.
    pub fn fallback(
        mut self,
        name: &'static str,
        open: impl FnOnce() -> io::Result<Box<dyn FdMonitor>> + 'static,
    ) -> ContextBuilder {
        self.fallback = Some(Fallback::new(name, open));
        self
    }

    /// Sets the engine for the operations that the monitor cannot carry out
    /// (all of them, on a monitor without an [engine of its
    /// own](FdMonitor::ops)): `make` gets the context's [`Remote`], through
    /// which the engine's completions wake the context. The `aio` facade
    /// gives every context a thread pool this way. The context owns the
    /// engine and drops it when it is dropped.
    pub fn ops_fallback(
        mut self,
        make: impl FnOnce(Remote) -> Box<dyn OpEngine> + 'static,
    ) -> ContextBuilder {
        self.ops_fallback = Some(Box::new(make));
        self
    }

    /// Creates the context and registers its notifier with the monitor.
    ///
    /// # Errors
    ///
    /// If the notifier cannot be created (out of fds), the monitor refuses
    /// it, or the timer slack cannot be set.
    pub fn build(self) -> io::Result<AioContext> {
        if let Some(slack) = self.timer_slack {
            let ns = NonZeroU64::new(saturating_ns(slack).max(1));
            rustix::thread::set_current_timer_slack(ns)?;
        }
        let doorbell = match self.doorbell {
            Some(doorbell) => doorbell,
            None => Box::new(EventNotifier::new()?),
        };
        let ops_fallback = self.ops_fallback;
        let report = self
            .backend
            .unwrap_or_else(|| BackendInfo::given(self.monitor.name()));
        let ctx = AioContext {
            inner: Rc::new(Inner {
                monitor: RefCell::new(self.monitor),
                migration: Migration::new(report, self.upgrade, self.fallback),
                registry: RefCell::default(),
                window: PollWindow::new(self.params),
                nesting: Default::default(),
                announcement: Default::default(),
                outer: Default::default(),
                bhs: Default::default(),
                timers: RefCell::default(),
                clock: self.clock,
                shared: Arc::new(Shared::new(doorbell)),
                counters: Default::default(),
                readiness: Cell::new(crate::Readiness::EMPTY),
                ops: crate::ops::Ops::default(),
            }),
        };
        ctx.register_notifier()?;
        if let Some(make) = ops_fallback {
            let engine = make(ctx.remote());
            *ctx.inner.ops.fallback.borrow_mut() = Some(engine);
        }
        Ok(ctx)
    }
}
