//! How a pool sizes itself, and what its workers do as they start.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The most workers a pool runs at once, unless told otherwise (QEMU's
/// `thread-pool-max`).
pub const DEFAULT_MAX_WORKERS: usize = 64;

/// How long a worker waits for a job before it leaves, unless told
/// otherwise (QEMU's 10 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a worker that has run a job and finds the queue empty spins
/// for the next one before it sleeps, unless told otherwise: about one
/// wake-up of a sleeping thread on a virtual machine, so that a stream of
/// short jobs is served without one.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(50);

/// What each worker runs on its own thread before its first job.
pub type WorkerHook = Arc<dyn Fn() + Send + Sync>;

/// How a [`Pool`](crate::Pool) sizes itself.
///
/// ```
/// use std::time::Duration;
/// use aio_pool::PoolOptions;
///
/// let options = PoolOptions { max_workers: 4, ..PoolOptions::default() };
/// assert_eq!(options.idle_timeout, Duration::from_secs(10));
/// ```
#[derive(Clone)]
pub struct PoolOptions {
    /// The most workers at once; 0 is taken as 1. Jobs queued while all of
    /// them are busy wait for one to finish.
    pub max_workers: usize,
    /// How long an idle worker waits for a job before it leaves.
    pub idle_timeout: Duration,
    /// How long a worker that has run a job and finds the queue empty
    /// spins for the next one before it sleeps; one worker at a time
    /// spins, so an idle pool burns at most this much CPU after its last
    /// job. Zero: workers sleep at once.
    pub spin: Duration,
    /// Run by each worker as it starts, on its thread: where to place it
    /// (workers inherit the CPU affinity of the thread that starts them,
    /// the context's home thread), its priority, its name in a tracer.
    /// None by default.
    pub on_worker_start: Option<WorkerHook>,
}

impl PoolOptions {
    /// These options with `hook` run by each worker as it starts.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use aio_pool::PoolOptions;
    ///
    /// let started = Arc::new(AtomicUsize::new(0));
    /// let count = Arc::clone(&started);
    /// let options = PoolOptions::default().on_worker_start(move || {
    ///     count.fetch_add(1, Ordering::Relaxed);
    /// });
    /// assert!(options.on_worker_start.is_some());
    /// ```
    #[must_use]
    pub fn on_worker_start(mut self, hook: impl Fn() + Send + Sync + 'static) -> PoolOptions {
        self.on_worker_start = Some(Arc::new(hook));
        self
    }
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            max_workers: DEFAULT_MAX_WORKERS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            spin: DEFAULT_SPIN,
            on_worker_start: None,
        }
    }
}

impl fmt::Debug for PoolOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolOptions")
            .field("max_workers", &self.max_workers)
            .field("idle_timeout", &self.idle_timeout)
            .field("spin", &self.spin)
            .field("on_worker_start", &self.on_worker_start.is_some())
            .finish()
    }
}
