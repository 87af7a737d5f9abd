//! `Remote`: the part of a context that other threads may touch. A queue of
//! jobs behind a mutex, the notify flags, and the doorbell, all in one `Arc`.

use std::error::Error;
use std::fmt;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use crate::AioContext;
use crate::bh::BhKey;
use crate::doorbell::Doorbell;
use crate::notify::NotifyState;
use crate::sync::{AtomicBool, AtomicU64, Mutex, MutexGuard};

/// Work sent from another thread, run on the home thread.
pub(crate) enum RemoteJob {
    /// A bottom half of the context, by key.
    Bh(BhKey),
    /// A closure that runs once.
    Once(Box<dyn FnOnce(&AioContext) + Send>),
}

/// What the home thread and other threads share.
pub(crate) struct Shared {
    pub(crate) notify: NotifyState,
    pub(crate) doorbell: Box<dyn Doorbell>,
    jobs: Mutex<Vec<RemoteJob>>,
    /// Set after a job is queued, so the home thread can look without
    /// taking the lock.
    has_jobs: AtomicBool,
    closed: AtomicBool,
    /// A stop asked for and not yet seen by [`AioContext::run`].
    stop: AtomicBool,
    pub(crate) doorbell_rings: AtomicU64,
}

impl Shared {
    pub(crate) fn new(doorbell: Box<dyn Doorbell>) -> Shared {
        Shared {
            notify: NotifyState::default(),
            doorbell,
            jobs: Mutex::default(),
            has_jobs: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            doorbell_rings: AtomicU64::new(0),
        }
    }

    pub(crate) fn notify(&self) {
        if self.notify.notify() {
            self.doorbell_rings.fetch_add(1, Ordering::Relaxed);
            self.doorbell.ring();
        }
    }

    /// Queues a job and wakes the home thread.
    pub(crate) fn push(&self, job: RemoteJob) -> Result<(), Gone> {
        {
            let mut jobs = self.lock_jobs();
            if self.closed.load(Ordering::Relaxed) {
                return Err(Gone::Context);
            }
            jobs.push(job);
        }
        self.has_jobs.store(true, Ordering::Release);
        self.notify();
        Ok(())
    }

    /// Whether jobs are queued (a hint: a job queued right after may be
    /// missed, but it notifies).
    pub(crate) fn has_jobs(&self) -> bool {
        self.has_jobs.load(Ordering::Acquire)
    }

    /// Moves the queued jobs into `into` (an empty vector whose capacity is
    /// reused, so the steady state does not allocate).
    pub(crate) fn take_jobs(&self, into: &mut Vec<RemoteJob>) {
        if self.has_jobs.swap(false, Ordering::Acquire) {
            std::mem::swap(&mut *self.lock_jobs(), into);
        }
    }

    /// Asks [`AioContext::run`] to return, and wakes it to see that: the
    /// flag is set before the notification, so the loop, woken, finds it.
    pub(crate) fn request_stop(&self) {
        self.stop.store(true, Ordering::Release);
        self.notify();
    }

    /// Whether a stop was asked for since the last call.
    pub(crate) fn take_stop(&self) -> bool {
        self.stop.swap(false, Ordering::Acquire)
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuses further jobs and drops the queued ones without running them.
    pub(crate) fn close(&self) {
        let jobs = {
            let mut jobs = self.lock_jobs();
            self.closed.store(true, Ordering::Release);
            std::mem::take(&mut *jobs)
        };
        drop(jobs);
    }

    fn lock_jobs(&self) -> MutexGuard<'_, Vec<RemoteJob>> {
        // A panic while the lock is held can only come from a job's
        // allocation failing; the vector itself is always consistent.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A handle to an [`AioContext`] for other threads: `Send + Sync + Clone`.
///
/// ```
/// use std::{sync::mpsc, thread};
/// use aio_core::{AioContext, testing::SleepMonitor};
///
/// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
/// let remote = ctx.remote();
/// let (tx, rx) = mpsc::channel();
/// thread::spawn(move || {
///     remote.schedule(move |_ctx| tx.send(thread::current().id()).unwrap()).unwrap();
/// });
/// while rx.try_recv().is_err() {
///     ctx.poll(true)?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Remote {
    shared: Arc<Shared>,
}

impl Remote {
    pub(crate) fn new(shared: Arc<Shared>) -> Remote {
        Remote { shared }
    }

    /// Wakes the context if it is blocked, or makes its next blocking wait
    /// return at once. Writes the doorbell only if the context has
    /// announced that it may block and no earlier notification is pending.
    pub fn notify(&self) {
        self.shared.notify();
    }

    /// Runs `f` once on the home thread, in the bottom-half phase of the
    /// next iteration.
    ///
    /// # Errors
    ///
    /// [`Gone::Context`] if the context has been dropped; `f` is dropped
    /// without running.
    pub fn schedule(&self, f: impl FnOnce(&AioContext) + Send + 'static) -> Result<(), Gone> {
        self.shared.push(RemoteJob::Once(Box::new(f)))
    }

    /// Makes the context's [`run`](AioContext::run) (or
    /// [`run_until`](AioContext::run_until)) return after the iteration in
    /// progress, waking it if it is blocked. If the context is not running,
    /// its next `run` returns at once.
    pub fn stop(&self) {
        self.shared.request_stop();
    }

    /// Whether the context has been dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// Work could not be scheduled because what it was for has been dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// The [`AioContext`] has been dropped.
    Context,
    /// The bottom half has been deleted (its handle dropped).
    BottomHalf,
}

impl fmt::Display for Gone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Gone::Context => "the AioContext has been dropped",
            Gone::BottomHalf => "the bottom half has been deleted",
        })
    }
}

impl Error for Gone {}

impl From<Gone> for io::Error {
    fn from(e: Gone) -> io::Error {
        io::Error::new(io::ErrorKind::NotConnected, e)
    }
}
