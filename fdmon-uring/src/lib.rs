//! An [`FdMonitor`] over io_uring, for the `aio` event loop.
//!
//! Each registration is a one-shot `IORING_OP_POLL_ADD` on the ring whose
//! `user_data` is the registration's token. A completion is reported with
//! that token and the poll is re-armed at once: the request is queued and
//! reaches the kernel with the next wait, after the handler has run, so an
//! fd that the handler did not drain completes again at once (level
//! semantics, as `poll(2)` has). Multishot polls are not used: they report
//! each wake-up once, like an edge-triggered monitor.
//!
//! Registration changes cost no system call: adds, re-arms and
//! `IORING_OP_POLL_REMOVE`s are batched into the one `io_uring_enter` that
//! also waits, with a nanosecond timeout (`IORING_ENTER_EXT_ARG`).
//!
//! Completions land in a ring shared with user space, so
//! [`pending`](FdMonitor::pending) can tell without a system call whether
//! readiness waits, in the [`TaskRun`] modes that show it: the core can
//! then busy-poll handlers that have no `poll` callback by watching the
//! ring, and skip zero-timeout waits that would find nothing. While re-arms
//! (or other requests) have not reached the kernel yet, `pending` answers
//! [`Pending::Submit`] instead, in every mode, and the core hands them over
//! with a zero-timeout wait before it trusts the ring again (or, in the
//! modes that cannot show readiness, before it measures what a peek costs).
//!
//! ```
//! use aio_core::{AioContext, EventNotifier, FdHandler};
//! use fdmon_uring::UringMonitor;
//!
//! let ctx = AioContext::with_monitor(Box::new(UringMonitor::new()?))?;
//! let n = EventNotifier::new()?;
//! ctx.set_fd_handler(&n, Some(FdHandler::new().on_read(|_| {})))?;
//! n.set()?;
//! assert!(ctx.poll(false)?);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A removed registration's poll is cancelled with the next wait; until
//! then the ring keeps a reference to the file, so closing the fd does not
//! release the file before the loop waits again.
//!
//! In the deferred task-running modes (the default) the ring is bound to
//! the first thread that waits on it, as the kernel requires of
//! `IORING_SETUP_SINGLE_ISSUER`: a monitor may be made on one thread and
//! moved to the thread of its context, but not moved again afterwards.

mod ops;
mod registrations;
mod ring;
mod ring_fd;

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use aio_core::{FdMonitor, Pending, ReadyEvent, Registration, deadline};

/// The io_uring crate this one builds its requests with, for [`submit_sqe`].
pub use io_uring;
pub use ops::submit_sqe;
use registrations::Registrations;
use ring::Ring;
pub use ring::{TaskRun, UringOptions};

/// A monitor over io_uring poll requests.
///
/// ```
/// use std::rc::Rc;
/// use aio_core::{AioContext, EventNotifier, FdHandler, FdMonitor, Pending};
/// use fdmon_uring::{TaskRun, UringMonitor};
///
/// let monitor = UringMonitor::new()?;
/// assert_eq!(monitor.name(), "io_uring");
/// assert_eq!(monitor.task_run(), TaskRun::default());
///
/// let ctx = AioContext::with_monitor(Box::new(monitor))?;
/// let n = Rc::new(EventNotifier::new()?);
/// let reader = Rc::clone(&n);
/// ctx.set_fd_handler(&*n, Some(FdHandler::new().on_read(move |_| {
///     reader.test_and_clear().unwrap();
/// })))?;
/// n.set()?;
/// assert!(ctx.poll(true)?);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct UringMonitor {
    ring: Ring,
    registrations: Registrations,
    ops: ops::RingOps,
}

impl UringMonitor {
    /// A monitor with the default [`UringOptions`]. On a kernel that does
    /// not know the default task-running flags (`EINVAL`: before Linux 6.1
    /// for the deferred modes), the next best mode it knows:
    /// [`TaskRun::CooperativeFlag`] (Linux 5.19), else
    /// [`TaskRun::Interrupt`].
    ///
    /// # Errors
    ///
    /// The setup's error with its raw OS error: `ENOSYS` (no io_uring in
    /// this kernel), `EPERM` (forbidden by seccomp or
    /// `kernel.io_uring_disabled`), `ENOMEM` (the locked-memory limit).
    /// [`io::ErrorKind::Unsupported`] if the kernel lacks an opcode or a
    /// feature the monitor needs; the message names it.
    pub fn new() -> io::Result<UringMonitor> {
        let options = UringOptions::default();
        let mut result = UringMonitor::with_options(options);
        for fallback in [TaskRun::CooperativeFlag, TaskRun::Interrupt] {
            match result {
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                    result = UringMonitor::with_options(options.task_run(fallback));
                }
                _ => break,
            }
        }
        result
    }

    /// A monitor set up as `options` say.
    ///
    /// # Errors
    ///
    /// As [`new`](UringMonitor::new), and `EINVAL` if the kernel does not
    /// know the task-running flags asked for.
    pub fn with_options(options: UringOptions) -> io::Result<UringMonitor> {
        let ring = Ring::open(&options)?;
        let ops = ring.probe_ops()?;
        Ok(UringMonitor {
            ring,
            registrations: Registrations::default(),
            ops,
        })
    }

    /// The task-running mode the ring was set up with.
    pub fn task_run(&self) -> TaskRun {
        self.ring.task_run()
    }

    /// How many times the monitor has entered the kernel with
    /// `io_uring_enter` (each submission or wait is one), for tests and
    /// measurements.
    pub fn enters(&self) -> u64 {
        self.ring.enters()
    }

    /// Whether the calling thread enters the ring by its index in the
    /// thread's table of registered rings (`IORING_REGISTER_RING_FDS`,
    /// Linux 5.18), which spares the kernel an fd lookup per enter. The
    /// ring is registered at its first enter, with the thread that makes
    /// it; any other thread enters by the fd. Dropping the monitor on that
    /// thread takes the ring out of the table.
    ///
    /// ```
    /// use std::time::Duration;
    /// use aio_core::FdMonitor;
    /// use fdmon_uring::UringMonitor;
    ///
    /// let mut monitor = UringMonitor::new()?;
    /// assert!(!monitor.enters_by_index(), "not before the first enter");
    /// monitor.wait(&mut Vec::new(), Some(Duration::ZERO))?;
    /// monitor.wait(&mut Vec::new(), Some(Duration::from_millis(1)))?;
    /// let elsewhere = std::thread::scope(|s| s.spawn(|| monitor.enters_by_index()).join());
    /// assert!(!elsewhere.unwrap(), "another thread enters by the fd");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn enters_by_index(&self) -> bool {
        self.ring.entered_by_index()
    }

    /// Fault injection, for tests: from now on every `every`-th
    /// `io_uring_enter` that would submit requests (to free room in a full
    /// submission queue, or with a wait) fails with `errno` without
    /// submitting or waiting, as a kernel short of memory or of completion
    /// room refuses one (`EAGAIN`, `EBUSY`, `ENOMEM`; `EINTR`). An
    /// operation that needed the room is then not queued, and the core
    /// sends it again at the next iteration; a refused wait ends at once,
    /// its requests still queued for the next. Returns a counter of the
    /// refusals made.
    ///
    /// ```
    /// use fdmon_uring::{UringMonitor, UringOptions};
    ///
    /// let mut monitor = UringMonitor::with_options(UringOptions::default().entries(4))?;
    /// let refused = monitor.refuse_submits_every(3, libc::ENOMEM);
    /// assert_eq!(refused.load(std::sync::atomic::Ordering::Relaxed), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn refuse_submits_every(&mut self, every: u32, errno: i32) -> Arc<AtomicU64> {
        self.ring.refuse_submits(every, errno)
    }

    /// How many fds are watched.
    pub fn len(&self) -> usize {
        self.registrations.len()
    }

    /// Whether no fd is watched.
    pub fn is_empty(&self) -> bool {
        self.registrations.len() == 0
    }

    /// Hands the queued registration changes and operations to the kernel
    /// now.
    fn registrations_and_requests_to_kernel(&mut self) -> io::Result<()> {
        self.registrations.flush(&mut self.ring)?;
        self.ring.enter(0, None)
    }

    /// One wait, as [`FdMonitor::wait`] describes it.
    fn wait_inner(
        &mut self,
        events: &mut Vec<ReadyEvent>,
        timeout: Option<Duration>,
    ) -> io::Result<()> {
        let before = events.len();
        // Requests that do not fit wait for the next call; the enter below
        // still collects what is there.
        if let Err(e) = self.registrations.flush(&mut self.ring)
            && !transient(&e)
        {
            return Err(e);
        }
        if timeout == Some(Duration::ZERO)
            || self.ring.has_completions()
            || !self.ops.done.is_empty()
        {
            if self.ring.must_enter() {
                match self.ring.enter(0, None) {
                    Err(e) if !transient(&e) => return Err(e),
                    _ => {}
                }
            }
            return self.reap(events);
        }
        // Woken without an event for a live registration (a signal, a stale
        // or internal completion): wait for the time that remains.
        deadline::retry(timeout, |left| {
            let entered = self.ring.enter(1, left);
            self.reap(events)?;
            if events.len() > before || !self.ops.done.is_empty() {
                return Ok(Some(()));
            }
            match entered {
                // Waiting on could wait for requests the kernel never got:
                // the wait ends, and the loop's next one sends them again.
                Err(e) if refused_for_now(&e) => Ok(Some(())),
                entered => entered.map(|_| None),
            }
        })?;
        Ok(())
    }

    /// Moves every completion posted so far to `events`, then any the
    /// kernel kept aside because the completion queue was full.
    fn reap(&mut self, events: &mut Vec<ReadyEvent>) -> io::Result<()> {
        loop {
            for cqe in self.ring.completions() {
                if !self.ops.reap(cqe.user_data(), cqe.result()) {
                    self.registrations
                        .complete(cqe.user_data(), cqe.result(), events);
                }
            }
            if !self.ring.overflowed() {
                return Ok(());
            }
            match self.ring.enter(0, None) {
                Err(e) if !transient(&e) => return Err(e),
                _ => {}
            }
        }
    }
}

impl std::fmt::Debug for UringMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UringMonitor")
            .field("task_run", &self.task_run())
            .field("registrations", &self.registrations.len())
            .finish_non_exhaustive()
    }
}

impl FdMonitor for UringMonitor {
    fn name(&self) -> &'static str {
        "io_uring"
    }

    fn update(
        &mut self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        self.registrations.update(fd, old, new)
    }

    fn wait(&mut self, events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        self.wait_inner(events, timeout)
    }

    /// Reads, writes and syncs on the ring (those whose opcodes the kernel
    /// has; the others go to the context's fallback engine).
    fn ops(&mut self) -> Option<&mut dyn aio_core::OpEngine> {
        Some(self)
    }

    /// What the rings show (see [`TaskRun`]): `Yes` if completions wait
    /// (in the modes that can show them); `Submit` while requests that the
    /// kernel has not seen are queued (the re-arms of the last completions,
    /// adds, removes: the readiness of an fd whose poll has not reached the
    /// kernel is not known, and the core hands them over with a
    /// zero-timeout wait); else `No`, or `Unknown` in the modes whose ring
    /// cannot show readiness.
    fn pending(&mut self) -> Pending {
        self.ring.pending(self.registrations.has_queued())
    }

    /// The ring's fd, readable when completions wait (the core submits the
    /// queued requests with a zero-timeout wait before an outer loop
    /// sleeps).
    ///
    /// The deferred modes have none: their completions wait as task work
    /// that does not wake pollers of the ring fd, and an eventfd registered
    /// with the ring was measured to be signalled only for the first of
    /// them. They answer `Unsupported`.
    fn loop_fd(&mut self) -> io::Result<BorrowedFd<'_>> {
        if self.ring.task_run().deferred() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring with deferred task running (DEFER_TASKRUN) cannot wake another event loop; \
                 use TaskRun::CooperativeFlag",
            ));
        }
        Ok(self.ring.fd())
    }
}

/// Errors after which the monitor goes on: a signal (`EINTR`), or a kernel
/// that refused the submission for the moment (see [`refused_for_now`]).
fn transient(e: &io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINTR) || refused_for_now(e)
}

/// Whether `io_uring_enter` refused the queued requests for the moment: a
/// kernel short of memory (`ENOMEM`, `EAGAIN`) or of completion room
/// (`EBUSY`). It then submitted nothing and did not wait; the requests stay
/// queued, and the next wait sends them again once completions are
/// collected.
fn refused_for_now(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAGAIN | libc::EBUSY | libc::ENOMEM)
    )
}
