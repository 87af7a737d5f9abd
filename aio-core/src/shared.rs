//! `Shared`: the part of a context that other threads may touch, in one
//! `Arc`: the notify flags, the doorbell, a queue of jobs behind a mutex,
//! and the stop flag.
//!
//! The queue is generic over its jobs so that this module knows nothing of
//! what they run: the context queues bottom halves and closures
//! ([`RemoteJob`](crate::bh::RemoteJob)).

use std::error::Error;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use crate::doorbell::Doorbell;
use crate::notify::NotifyState;
use crate::sync::{AtomicBool, AtomicU64, Mutex, MutexGuard};

/// What the home thread and other threads share: jobs of type `J`.
pub(crate) struct Shared<J> {
    notify: NotifyState,
    doorbell: Box<dyn Doorbell>,
    /// The doorbell's fd, which every registration is checked against.
    doorbell_fd: RawFd,
    jobs: Mutex<Vec<J>>,
    /// Set after a job is queued, so the home thread can look without
    /// taking the lock.
    has_jobs: AtomicBool,
    closed: AtomicBool,
    /// A stop asked for and not yet seen by [`AioContext::run`](crate::AioContext::run).
    stop: AtomicBool,
    doorbell_rings: AtomicU64,
}

impl<J> Shared<J> {
    pub(crate) fn new(doorbell: Box<dyn Doorbell>) -> Shared<J> {
        Shared {
            notify: NotifyState::default(),
            doorbell_fd: doorbell.raw_fd(),
            doorbell,
            jobs: Mutex::default(),
            has_jobs: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            doorbell_rings: AtomicU64::new(0),
        }
    }

    /// The notify protocol's flags.
    pub(crate) fn notify_state(&self) -> &NotifyState {
        &self.notify
    }

    /// The doorbell that wakes a blocked home thread.
    pub(crate) fn doorbell(&self) -> &dyn Doorbell {
        &*self.doorbell
    }

    /// The doorbell's fd.
    pub(crate) fn doorbell_fd(&self) -> RawFd {
        self.doorbell_fd
    }

    /// Writes to the doorbell so far.
    pub(crate) fn doorbell_rings(&self) -> u64 {
        self.doorbell_rings.load(Ordering::Relaxed)
    }

    /// Wakes the home thread if it is blocked, or makes its next blocking
    /// wait return at once.
    pub(crate) fn notify(&self) {
        if self.notify.notify() {
            self.doorbell_rings.fetch_add(1, Ordering::Relaxed);
            self.doorbell.ring();
        }
    }

    /// Queues a job and wakes the home thread.
    pub(crate) fn push(&self, job: J) -> Result<(), Gone> {
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
    pub(crate) fn take_jobs(&self, into: &mut Vec<J>) {
        if self.has_jobs.swap(false, Ordering::Acquire) {
            std::mem::swap(&mut *self.lock_jobs(), into);
        }
    }

    /// Asks [`AioContext::run`](crate::AioContext::run) to return, and wakes
    /// it to see that: the flag is set before the notification, so the loop,
    /// woken, finds it.
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

    fn lock_jobs(&self) -> MutexGuard<'_, Vec<J>> {
        // A panic while the lock is held can only come from a job's
        // allocation failing; the vector itself is always consistent.
        self.jobs.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Work could not be scheduled because what it was for has been dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gone {
    /// The [`AioContext`](crate::AioContext) has been dropped.
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
