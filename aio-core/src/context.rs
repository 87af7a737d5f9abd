//! `AioContext`: its state, one owner per part ([`Inner`]), the
//! registration of fd handlers, and moves to another monitor. It is built in
//! `builder.rs`; the iteration lives in `iteration.rs`, busy polling in
//! `busy_poll.rs`, dispatch in `dispatch.rs`.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use crate::Stats;
use crate::backend::BackendInfo;
use crate::bh::{BottomHalves, RemoteJob};
use crate::clock::Clock;
use crate::fd::{FdSource, FileIdentity};
use crate::handler::{FdHandler, Node, PollHook};
use crate::migration::Migration;
use crate::monitor::{FdMonitor, Interest, Readiness};
use crate::nesting::Nesting;
use crate::notify::Announcement;
use crate::outer::Outer;
use crate::polling::PollWindow;
use crate::registry::Registry;
use crate::shared::Shared;
use crate::stats::{Counter, Counters};
use crate::timer::Timers;

/// A single-threaded event loop: fd handlers with read, write and poll
/// callbacks, adaptive busy polling, bottom halves, timers, and cheap
/// wake-ups from other threads.
///
/// A context belongs to the thread that made it (it is neither `Send` nor
/// `Sync`). Its methods take `&self`, so callbacks, which receive
/// `&AioContext`, can register and remove handlers, schedule work, and even
/// call [`poll`](AioContext::poll) recursively. Other threads reach it
/// through a [`Remote`](crate::Remote).
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

/// The state of a context, one owner per part; handles (bottom halves,
/// timers, operations) keep a `Weak` to it. Each part keeps its own fields
/// private and its invariants with them; this file and the drivers of the
/// loop (`iteration.rs`, `busy_poll.rs`, `dispatch.rs`, `embed.rs`, ...)
/// only call their methods.
pub(crate) struct Inner {
    pub(crate) monitor: RefCell<Box<dyn FdMonitor>>,
    /// The backend report, and the planned upgrade and fallback.
    pub(crate) migration: Migration,
    pub(crate) registry: RefCell<Registry>,
    /// Busy polling: the polled handlers, poll mode, the parameters, the
    /// peek gate, when the monitor was last asked.
    pub(crate) window: PollWindow,
    /// The levels of `poll` on the stack and what they defer.
    pub(crate) nesting: Nesting,
    /// The block `poll` announced, during its wait.
    pub(crate) announcement: Announcement,
    /// What an outer event loop's `prepare` and `check` keep for `dispatch`.
    pub(crate) outer: Outer,
    pub(crate) bhs: BottomHalves,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) clock: Clock,
    /// What other threads touch.
    pub(crate) shared: Arc<Shared<RemoteJob>>,
    pub(crate) counters: Counters,
    /// What the running read or write callback was called for.
    pub(crate) readiness: Cell<Readiness>,
    /// Operations in flight, and the fallback engine.
    pub(crate) ops: crate::ops::Ops,
}

impl AioContext {
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
    /// number; but until the removal, what the old handler sees depends on
    /// the monitor (see [`stale_fds`](AioContext::stale_fds), which finds
    /// such fds, and the debug-build check that panics on one).
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
        if fd == self.inner.shared.doorbell_fd() {
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
                let file = self.identify(fd, &handler)?;
                self.install(|node, token| node.fill(fd, file, token, handler))
            }
        }
    }

    /// Turns watching for readability or writability of `fd` on or off,
    /// keeping its handler's callbacks and polling state: one monitor
    /// update, no allocation. A server turns write interest on while a reply
    /// is queued and off when it drains. `interest` may name only the
    /// directions that the handler has callbacks for; [`Interest::NONE`]
    /// stops watching the fd (its `poll` callback, if any, still runs).
    /// Readiness that the monitor saw for the old interest is not
    /// delivered; what is still ready is reported again, under the new
    /// interest.
    ///
    /// May be called from any callback, the fd's own included.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` has no handler; `InvalidInput` if `interest` asks
    /// for a direction without a callback, or for the context's own
    /// notifier; whatever the monitor refuses, in which case nothing
    /// changes.
    ///
    /// ```
    /// use aio_core::{AioContext, EventNotifier, FdHandler, Interest, testing::SleepMonitor};
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let n = EventNotifier::new()?;
    /// let handler = FdHandler::new().on_read(|_| {}).on_write(|_| {});
    /// ctx.set_fd_handler(&n, Some(handler))?;
    /// ctx.set_fd_interest(&n, Interest::READABLE)?; // nothing to send
    /// ctx.set_fd_interest(&n, Interest::BOTH)?; // a reply is queued
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_fd_interest(&self, fd: impl FdSource, interest: Interest) -> io::Result<()> {
        let fd = fd.raw_fd();
        let inner = &self.inner;
        let node = inner.registry.borrow().by_fd(fd).cloned();
        let node = match node {
            Some(node) if node.owner == crate::handler::Owner::Context => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("fd {fd} is the context's own notifier"),
                ));
            }
            Some(node) => node,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("fd {fd} has no handler"),
                ));
            }
        };
        if interest.with(node.served()) != node.served() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "fd {fd}'s handler cannot serve {interest:?}: it has callbacks for {:?}",
                    node.served()
                ),
            ));
        }
        if interest == node.interest() {
            return Ok(());
        }
        let mut registry = inner.registry.borrow_mut();
        let token = registry.reserve_token(&node);
        let old = registry.registration(&node);
        let new = registry.registration_as(&node, interest, token);
        if (old.is_some() || new.is_some())
            && let Err(e) = inner.monitor.borrow_mut().update(fd, old, new)
        {
            registry.release(token);
            return Err(e);
        }
        registry.rekey(&node, interest, token);
        Ok(())
    }

    /// Sets or replaces the `poll_begin` and `poll_end` hooks of `fd`'s
    /// handler (`None` removes one), keeping its callbacks and its
    /// adaptive-polling state (poll time, place on the polled list). The
    /// pairs stay whole: if the handler is being polled, its old `poll_end`
    /// runs now, then the new `poll_begin`.
    ///
    /// # Errors
    ///
    /// `NotFound` if `fd` has no handler, `Unsupported` if the handler has no
    /// `poll` callback (the hooks would never run), `ResourceBusy` if called
    /// from one of the hooks.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use aio_core::{AioContext, EventNotifier, FdHandler, testing::SleepMonitor};
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let n = EventNotifier::new()?;
    /// ctx.set_fd_handler(&n, Some(FdHandler::new().on_poll(|| false, |_| {})))?;
    /// let suppressed = Rc::new(Cell::new(false));
    /// let (on, off) = (suppressed.clone(), suppressed.clone());
    /// ctx.set_fd_poll(
    ///     &n,
    ///     Some(Box::new(move || on.set(true))),
    ///     Some(Box::new(move || off.set(false))),
    /// )?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_fd_poll(
        &self,
        fd: impl FdSource,
        poll_begin: Option<PollHook>,
        poll_end: Option<PollHook>,
    ) -> io::Result<()> {
        let fd = fd.raw_fd();
        let node = self.inner.registry.borrow().by_fd(fd).cloned();
        match node {
            Some(node) if node.counts_as_progress() => node.set_poll_hooks(poll_begin, poll_end),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("fd {fd} has no handler"),
            )),
        }
    }

    /// Moves every registration to `monitor` and runs on it from now on;
    /// `why` goes into the [backend report](AioContext::backend).
    /// Readiness that was pending is reported again by the new monitor
    /// (monitors are level-triggered).
    ///
    /// # Errors
    ///
    /// `ResourceBusy` when called from inside `poll` (a callback), or while
    /// operations are in flight on the old monitor's ring; any error of the
    /// new monitor, in which case the context stays on the old one.
    ///
    /// ```
    /// use aio_core::{AioContext, Selection, testing::SleepMonitor};
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// ctx.set_monitor(Box::new(SleepMonitor::new()), "a test")?;
    /// assert_eq!(ctx.backend().to_string(), "sleep (moved from sleep: a test)");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_monitor(
        &self,
        monitor: Box<dyn FdMonitor>,
        why: impl Into<String>,
    ) -> io::Result<()> {
        if self.inner.nesting.inside_poll() {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "the monitor cannot change inside poll",
            ));
        }
        let from = self.inner.monitor.borrow().name();
        self.move_registrations(monitor)?;
        let to = self.inner.monitor.borrow().name();
        self.inner.migration.moved(to, from, why.into());
        Ok(())
    }

    /// Registers every watched handler with `monitor` and runs on it; on
    /// error, takes back what it registered and stays on the old one.
    pub(crate) fn move_registrations(&self, mut monitor: Box<dyn FdMonitor>) -> io::Result<()> {
        if self.monitor_ops_in_flight() {
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                "operations are in flight on the monitor's ring; the monitor can change once they complete",
            ));
        }
        let registry = self.inner.registry.borrow();
        {
            let mut old = self.inner.monitor.borrow_mut();
            if old.tracks_files() && !monitor.tracks_files() {
                crate::fd::identify_tracked(&mut **old, &registry);
            }
        }
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
        self.inner.monitor.replace(monitor);
        self.inner.counters.bump(Counter::MonitorMoves);
        Ok(())
    }

    /// Makes the planned upgrade if the context has reached the threshold;
    /// the caller makes sure no `poll` is on the stack but its own outermost
    /// one. A monitor that cannot be set up, or that refuses a registration,
    /// leaves the context where it is, with the reason in its backend
    /// report; the move is not tried again.
    #[inline]
    pub(crate) fn upgrade_if_due(&self) {
        let migration = &self.inner.migration;
        let Some((upgrade, opened)) = migration.open_due_upgrade(|| self.handler_count()) else {
            return;
        };
        let from = self.inner.monitor.borrow().name();
        let moved = opened.and_then(|monitor| self.move_registrations(monitor));
        migration.upgraded(upgrade, from, moved);
    }

    /// After the monitor's wait failed with `error`: moves to the planned
    /// fallback monitor, if there is one and it takes every registration.
    /// Returns whether the context moved (and `error` is dealt with).
    pub(crate) fn fall_back(&self, error: &io::Error) -> bool {
        let migration = &self.inner.migration;
        let Some(fallback) = migration.take_fallback() else {
            return false;
        };
        let from = self.inner.monitor.borrow().name();
        // A ring that failed for good cannot say when the kernel is done
        // with the buffers of its operations.
        self.abandon_monitor_ops();
        let (name, opened) = fallback.open();
        let moved = opened.and_then(|monitor| self.move_registrations(monitor));
        migration.fell_back(name, from, error, moved)
    }

    /// What the monitor saw on the fd whose read or write callback is
    /// running: a read callback runs for [`READABLE`](Readiness::READABLE),
    /// [`HANGUP`](Readiness::HANGUP) or [`ERROR`](Readiness::ERROR), a write
    /// callback for `WRITABLE` or `ERROR`, and this says which, so that a
    /// handler can tell a peer's hang-up from data without a read.
    /// [`Readiness::EMPTY`] outside read and write callbacks (in `poll_ready`,
    /// bottom halves and timers).
    ///
    /// ```
    /// use aio_core::{AioContext, EventNotifier, FdHandler, Readiness, testing::SleepMonitor};
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let n = EventNotifier::new()?;
    /// ctx.set_fd_handler(&n, Some(FdHandler::new().on_read(|ctx| {
    ///     if ctx.readiness().contains(Readiness::HANGUP) {
    ///         // the peer is gone: remove the handler, close the fd
    ///     }
    /// })))?;
    /// assert_eq!(ctx.readiness(), Readiness::EMPTY);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn readiness(&self) -> Readiness {
        self.inner.readiness.get()
    }

    /// Which monitor the context runs on, and why.
    pub fn backend(&self) -> BackendInfo {
        self.inner.migration.report()
    }

    /// Wakes the context if it is blocked, or makes its next blocking wait
    /// return at once; the same as [`Remote::notify`](crate::Remote::notify).
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
        let window = &self.inner.window;
        let (polled, max_poll_ns) = window.polled_stats();
        self.inner.counters.snapshot(
            self.inner.shared.doorbell_rings(),
            polled,
            max_poll_ns,
            window.peek_cost_ns().unwrap_or(0),
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

    /// The fds whose handler is still registered but which were closed, or
    /// whose number now names another file than when the handler was
    /// registered: the misuse of closing an fd before removing its handler.
    /// What then happens depends on the monitor: on poll and io_uring the
    /// old handler runs for whatever file reuses the number (io_uring
    /// watches the old file, which it holds open, poll the new one); on
    /// epoll it is never called again (the kernel dropped the registration
    /// with the file), unless a `dup` of the fd keeps the file open. One
    /// system call per handler (an `fstat`, or on epoll an `epoll_ctl` that
    /// asks the kernel); for tests and debugging. Debug builds also check
    /// each fd before its callbacks run and panic on such an fd, saying
    /// which.
    ///
    /// On epoll, a handler that the monitor does not watch at the moment
    /// (its interest turned off, or external handlers disabled), and that
    /// was watched when it was registered, has nothing to be checked
    /// against and is not named.
    ///
    /// ```
    /// use aio_core::{AioContext, EventNotifier, FdHandler, testing::SleepMonitor};
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let n = EventNotifier::new()?;
    /// ctx.set_fd_handler(&n, Some(FdHandler::new().on_read(|_| {})))?;
    /// assert!(ctx.stale_fds().is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn stale_fds(&self) -> Vec<RawFd> {
        let registry = self.inner.registry.borrow();
        let mut monitor = self.inner.monitor.borrow_mut();
        registry
            .nodes()
            .filter(|node| !crate::fd::names_its_file(&mut **monitor, &registry, node))
            .map(|node| node.fd)
            .collect()
    }

    /// How many fds have a handler (the context's own notifier excluded).
    pub fn handler_count(&self) -> usize {
        self.inner.registry.borrow().len() - 1
    }

    /// The file that `fd` names, for a new handler: what
    /// [`stale_fds`](AioContext::stale_fds) and the debug builds' check
    /// before each callback compare against, and an `fstat` that refuses a
    /// closed fd. A monitor that tracks files (epoll) makes both checks for
    /// the fds it watches, so the `fstat` is skipped there: it would cost
    /// about a quarter of epoll's own add and remove.
    fn identify(&self, fd: RawFd, handler: &FdHandler) -> io::Result<Option<FileIdentity>> {
        let watched = self
            .inner
            .registry
            .borrow()
            .watches(handler.interest(), handler.is_external());
        if !watched || !self.inner.monitor.borrow().tracks_files() {
            return FileIdentity::of(fd).map(Some);
        }
        Ok(None)
    }

    pub(crate) fn register_notifier(&self) -> io::Result<()> {
        let fd = self.inner.shared.doorbell_fd();
        let file = FileIdentity::of(fd).ok();
        let shared = Arc::clone(&self.inner.shared);
        self.install(move |node, token| {
            node.fill_notifier(
                fd,
                file,
                token,
                Box::new(move |_| shared.doorbell().drain()),
            );
        })
    }

    /// Tells the monitor about a new node for an fd, then swaps it in.
    fn install(&self, fill: impl FnOnce(&mut Node, crate::Token)) -> io::Result<()> {
        let inner = &self.inner;
        let spare = inner.nesting.spare_node();
        let node = inner.registry.borrow_mut().reserve(fill, spare);
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
    pub(crate) fn retire(&self, node: Rc<Node>) {
        self.inner.window.unlist(&node, &self.inner.registry);
        self.inner.nesting.retire(node);
    }
}

impl fmt::Debug for AioContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AioContext")
            .field("backend", &self.inner.migration.report())
            .field("handlers", &self.handler_count())
            .field("poll_params", &self.inner.window.params())
            .finish_non_exhaustive()
    }
}

impl Drop for AioContext {
    fn drop(&mut self) {
        let inner = &self.inner;
        inner.shared.close();
        self.drain_ops();
        let nodes = inner.registry.borrow_mut().drain();
        inner.window.clear();
        for node in &nodes {
            node.end_polling();
        }
        drop(nodes);
        inner.nesting.free_deferred();
        inner.bhs.clear();
        // Dropped outside the borrow: a callback may own other timers.
        let timers = std::mem::take(&mut *inner.timers.borrow_mut());
        drop(timers);
    }
}
