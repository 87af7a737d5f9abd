//! `AioContext`: its state, its construction, and the registration of fd
//! handlers. The iteration itself lives in `iteration.rs`, busy polling in
//! `polling.rs`, dispatch in `dispatch.rs`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::num::NonZeroU64;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::BackendInfo;
use crate::bh::BottomHalves;
use crate::clock::{Clock, saturating_ns};
use crate::doorbell::Doorbell;
use crate::fd::{FdSource, check_open};
use crate::handler::{FdHandler, Node};
use crate::monitor::{FdMonitor, ReadyEvent};
use crate::polling::PollParams;
use crate::registry::Registry;
use crate::remote::{Remote, Shared};
use crate::stats::Counters;
use crate::timer::Timers;
use crate::{EventNotifier, Stats};

/// A single-threaded event loop: fd handlers with read, write and poll
/// callbacks, adaptive busy polling, bottom halves, timers, and cheap
/// wake-ups from other threads.
///
/// A context belongs to the thread that made it (it is neither `Send` nor
/// `Sync`). Its methods take `&self`, so callbacks, which receive
/// `&AioContext`, can register and remove handlers, schedule work, and even
/// call [`poll`](AioContext::poll) recursively. Other threads reach it
/// through a [`Remote`].
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use aio_core::{AioContext, EventNotifier, FdHandler, testing::SleepMonitor};
///
/// // Any `FdMonitor` will do; the `aio` crate picks the best one for you.
/// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
/// let hits = Rc::new(Cell::new(0));
/// let h = hits.clone();
/// ctx.schedule_oneshot(move |_ctx| h.set(h.get() + 1));
/// assert!(ctx.poll(true)?);
/// assert_eq!(hits.get(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct AioContext {
    pub(crate) inner: Rc<Inner>,
}

/// The state of a context; handles (bottom halves, timers, guards) keep a
/// `Weak` to it.
pub(crate) struct Inner {
    pub(crate) monitor: RefCell<Box<dyn FdMonitor>>,
    pub(crate) registry: RefCell<Registry>,
    /// Handlers with a `poll` callback that have become ready at least once.
    pub(crate) polled: RefCell<Vec<Rc<Node>>>,
    /// Whether `poll_begin` has been called on the polled handlers.
    pub(crate) poll_mode: Cell<bool>,
    pub(crate) params: Cell<PollParams>,
    /// How many `poll` calls are on the stack.
    pub(crate) depth: Cell<u32>,
    /// Removed handlers whose callbacks are dropped when `depth` reaches 0.
    pub(crate) deferred: RefCell<Vec<Rc<Node>>>,
    /// Ready lists, one per nesting level, reused.
    pub(crate) ready_lists: RefCell<Vec<Vec<ReadyEvent>>>,
    /// Number of the current iteration; orders readiness across nesting.
    pub(crate) iteration: Cell<u64>,
    /// When the monitor was last asked what is ready.
    pub(crate) last_wait: Cell<u64>,
    pub(crate) bhs: BottomHalves,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) clock: Clock,
    pub(crate) shared: Arc<Shared>,
    pub(crate) counters: Counters,
    pub(crate) backend: RefCell<BackendInfo>,
}

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
    doorbell: Option<Box<dyn Doorbell>>,
    timer_slack: Option<Duration>,
}

/// The timer slack a context gives its thread by default, as QEMU does.
const DEFAULT_TIMER_SLACK: Duration = Duration::from_nanos(1);

impl ContextBuilder {
    /// A builder for a context on `monitor`.
    pub fn new(monitor: Box<dyn FdMonitor>) -> ContextBuilder {
        ContextBuilder {
            monitor,
            params: PollParams::default(),
            clock: Clock::monotonic(),
            backend: None,
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
    /// the monitor's name, chosen by the caller).
    pub fn backend_info(mut self, info: BackendInfo) -> ContextBuilder {
        self.backend = Some(info);
        self
    }

    #[cfg(feature = "testing")]
    pub(crate) fn doorbell(mut self, doorbell: Box<dyn Doorbell>) -> ContextBuilder {
        self.doorbell = Some(doorbell);
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
        let backend = self
            .backend
            .unwrap_or_else(|| BackendInfo::chosen(self.monitor.name()));
        let ctx = AioContext {
            inner: Rc::new(Inner {
                monitor: RefCell::new(self.monitor),
                registry: RefCell::default(),
                polled: RefCell::default(),
                poll_mode: Cell::new(false),
                params: Cell::new(self.params),
                depth: Cell::new(0),
                deferred: RefCell::default(),
                ready_lists: RefCell::default(),
                iteration: Cell::new(0),
                last_wait: Cell::new(0),
                bhs: BottomHalves::default(),
                timers: RefCell::default(),
                clock: self.clock,
                shared: Arc::new(Shared::new(doorbell)),
                counters: Counters::default(),
                backend: RefCell::new(backend),
            }),
        };
        ctx.register_notifier()?;
        Ok(ctx)
    }
}

impl AioContext {
    /// A context on `monitor`, with polling off and the monotonic clock.
    pub fn with_monitor(monitor: Box<dyn FdMonitor>) -> io::Result<AioContext> {
        ContextBuilder::new(monitor).build()
    }

    /// Registers, replaces or removes the handler of `fd`.
    ///
    /// * `Some(handler)` registers it, or replaces the fd's handler: the fd
    ///   stays registered and the callbacks are swapped. A replaced
    ///   handler's callbacks are never called again.
    /// * `None` removes the fd's handler; removing an fd that has none does
    ///   nothing.
    ///
    /// The fd must stay open until its handler is removed. If it is closed
    /// first, removal still succeeds, and readiness reported for the old
    /// registration never reaches a handler registered later on the same fd
    /// number.
    ///
    /// May be called from any callback, for any fd, the running handler's
    /// own included: a removed handler is never called again, and its
    /// callbacks are dropped once the outermost `poll` has dispatched its ready
    /// handlers (or returns, if the removal came later, from a timer).
    ///
    /// # Errors
    ///
    /// `EBADF` for a negative or closed fd, `InvalidInput` for a handler
    /// without callbacks or for the context's own notifier fd, and whatever
    /// the monitor refuses (epoll refuses regular files, for example). On
    /// error nothing changes.
    ///
    /// ```
    /// use std::os::fd::AsRawFd;
    /// use aio_core::{AioContext, EventNotifier, FdHandler, testing::SleepMonitor};
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let n = EventNotifier::new()?;
    /// ctx.set_fd_handler(&n, Some(FdHandler::new().on_read(|_| {})))?;
    /// ctx.set_fd_handler(&n, None)?;
    /// assert!(ctx.set_fd_handler(-1, Some(FdHandler::new().on_read(|_| {}))).is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_fd_handler(&self, fd: impl FdSource, handler: Option<FdHandler>) -> io::Result<()> {
        let fd = fd.raw_fd();
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is negative"),
            ));
        }
        if fd == self.inner.shared.doorbell.raw_fd() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is the context's own notifier"),
            ));
        }
        match handler {
            None => self.remove_handler(fd),
            Some(handler) if handler.is_empty() => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a handler needs a read, write or poll callback; pass None to remove one",
            )),
            Some(handler) => {
                check_open(fd)?;
                self.install(|token| Node::new(fd, token, handler))
            }
        }
    }

    /// Holds back external handlers: they are not dispatched, and their fds
    /// are not watched (so a readable external fd cannot make the loop
    /// spin), until a matching [`enable_external`](Self::enable_external).
    /// Calls nest.
    pub fn disable_external(&self) -> io::Result<()> {
        let count = self.inner.registry.borrow().external_disabled();
        let count = count.checked_add(1).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "disable_external nested too deep",
            )
        })?;
        self.set_external_disabled(count)
    }

    /// Undoes one [`disable_external`](Self::disable_external); the last one
    /// lets external handlers run again.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if external handlers are not disabled. If the monitor
    /// refuses to watch an external fd again, that handler is removed (its
    /// callbacks dropped) and the error names its fd.
    pub fn enable_external(&self) -> io::Result<()> {
        let count = self.inner.registry.borrow().external_disabled();
        let count = count.checked_sub(1).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "external handlers are not disabled",
            )
        })?;
        self.set_external_disabled(count)
    }

    /// Whether external handlers are disabled.
    pub fn is_external_disabled(&self) -> bool {
        self.inner.registry.borrow().external_disabled() > 0
    }

    /// Moves every registration to `monitor` and runs on it from now on.
    /// Readiness that was pending is reported again by the new monitor
    /// (monitors are level-triggered).
    ///
    /// # Errors
    ///
    /// `ResourceBusy` when called from inside `poll` (a callback); any error
    /// of the new monitor, in which case the context stays on the old one.
    pub fn set_monitor(&self, mut monitor: Box<dyn FdMonitor>) -> io::Result<()> {
        if self.inner.depth.get() > 0 {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "the monitor cannot change inside poll",
            ));
        }
        let registry = self.inner.registry.borrow();
        let mut moved = Vec::new();
        for node in registry.nodes() {
            let Some(registration) = registry.registration(node) else {
                continue;
            };
            if let Err(e) = monitor.update(node.fd, None, Some(registration)) {
                for (fd, registration) in moved {
                    let _ = monitor.update(fd, Some(registration), None);
                }
                return Err(e);
            }
            moved.push((node.fd, registration));
        }
        drop(registry);
        let old = self.inner.monitor.replace(monitor);
        self.inner
            .backend
            .borrow_mut()
            .moved_to(self.inner.monitor.borrow().name(), old.name());
        Ok(())
    }

    /// Which monitor the context runs on, and why.
    pub fn backend(&self) -> BackendInfo {
        self.inner.backend.borrow().clone()
    }

    /// A handle for other threads: notify the context or schedule work on it.
    pub fn remote(&self) -> Remote {
        Remote::new(Arc::clone(&self.inner.shared))
    }

    /// Wakes the context if it is blocked, or makes its next blocking wait
    /// return at once; the same as [`Remote::notify`].
    pub fn notify(&self) {
        self.inner.shared.notify();
    }

    /// The current time of the context's clock, in nanoseconds.
    pub fn now_ns(&self) -> u64 {
        self.inner.clock.now_ns()
    }

    /// The context's clock.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Counters of what the loop has done, and its current poll times.
    pub fn stats(&self) -> Stats {
        let polled = self.inner.polled.borrow();
        self.inner.counters.snapshot(
            &self.inner.shared,
            polled.len(),
            polled.iter().map(|n| n.polled.ns.get()).max().unwrap_or(0),
        )
    }

    /// The current poll time of the handler of `fd`: `None` if the fd has no
    /// handler or the handler is not on the polled list.
    pub fn poll_time(&self, fd: impl FdSource) -> Option<Duration> {
        let registry = self.inner.registry.borrow();
        let node = registry.by_fd(fd.raw_fd())?;
        node.polled
            .listed
            .get()
            .then(|| Duration::from_nanos(node.polled.ns.get()))
    }

    /// How many fds have a handler (the context's own notifier excluded).
    pub fn handler_count(&self) -> usize {
        self.inner.registry.borrow().len() - 1
    }

    fn register_notifier(&self) -> io::Result<()> {
        let fd = self.inner.shared.doorbell.raw_fd();
        let shared = Arc::clone(&self.inner.shared);
        self.install(move |token| {
            Node::context_notifier(fd, token, Box::new(move |_| shared.doorbell.drain()))
        })
    }

    /// Tells the monitor about a new node for an fd, then swaps it in.
    fn install(&self, make: impl FnOnce(crate::Token) -> Node) -> io::Result<()> {
        let inner = &self.inner;
        let node = inner.registry.borrow_mut().reserve(make);
        let (old_reg, new_reg) = {
            let registry = inner.registry.borrow();
            let old = registry
                .by_fd(node.fd)
                .and_then(|old| registry.registration(old));
            (old, registry.registration(&node))
        };
        let updated = inner.monitor.borrow_mut().update(node.fd, old_reg, new_reg);
        if let Err(e) = updated {
            inner.registry.borrow_mut().abandon(&node);
            return Err(e);
        }
        let old = inner.registry.borrow_mut().commit(&node);
        if let Some(old) = old {
            self.retire(old);
        }
        Ok(())
    }

    fn remove_handler(&self, fd: RawFd) -> io::Result<()> {
        let inner = &self.inner;
        let registration = {
            let registry = inner.registry.borrow();
            let Some(node) = registry.by_fd(fd) else {
                return Ok(());
            };
            registry.registration(node)
        };
        if registration.is_some() {
            inner.monitor.borrow_mut().update(fd, registration, None)?;
        }
        let node = inner.registry.borrow_mut().remove(fd);
        if let Some(node) = node {
            self.retire(node);
        }
        Ok(())
    }

    /// Takes a removed node out of polling and drops it, or defers the drop
    /// while a `poll` is on the stack (a callback of the node may be
    /// running, and walkers may still hold it).
    fn retire(&self, node: Rc<Node>) {
        self.unlist_polled(&node);
        if self.inner.depth.get() > 0 {
            self.inner.deferred.borrow_mut().push(node);
        }
    }

    /// Drops the callbacks of removed handlers; called when the outermost
    /// `poll` ends.
    pub(crate) fn free_deferred(&self) {
        let deferred = std::mem::take(&mut *self.inner.deferred.borrow_mut());
        drop(deferred);
    }

    fn set_external_disabled(&self, count: u32) -> io::Result<()> {
        let inner = &self.inner;
        let before = inner.registry.borrow().external_disabled();
        let changed = inner.registry.borrow_mut().set_external_disabled(count);
        let disabling = count > before;
        let mut first_error = None;
        for node in changed {
            if let Some(registration) = node.registration() {
                let (old, new) = if disabling {
                    (Some(registration), None)
                } else {
                    (None, Some(registration))
                };
                if let Err(e) = inner.monitor.borrow_mut().update(node.fd, old, new) {
                    first_error.get_or_insert_with(|| {
                        io::Error::new(e.kind(), format!("fd {}: {e}", node.fd))
                    });
                    if !disabling {
                        self.drop_unwatched(node.fd);
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Removes a handler whose fd the monitor refused to watch again, so
    /// that the registry never holds what the monitor does not.
    fn drop_unwatched(&self, fd: RawFd) {
        let node = self.inner.registry.borrow_mut().remove(fd);
        if let Some(node) = node {
            self.retire(node);
        }
    }
}

impl fmt::Debug for AioContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AioContext")
            .field("backend", &*self.inner.backend.borrow())
            .field("handlers", &self.handler_count())
            .field("poll_params", &self.inner.params.get())
            .finish_non_exhaustive()
    }
}

impl Drop for AioContext {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.shared.close();
        let nodes = inner.registry.borrow_mut().drain();
        inner.polled.borrow_mut().clear();
        for node in &nodes {
            node.end_polling();
        }
        drop(nodes);
        self.free_deferred();
        inner.bhs.clear();
        // Dropped outside the borrow: a callback may own other timers.
        let timers = std::mem::take(&mut *inner.timers.borrow_mut());
        drop(timers);
    }
}
