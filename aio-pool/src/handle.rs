//! [`PoolHandle`]: a pool's counters and blocking closures, from any
//! thread.

use std::fmt;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use crate::worker::{Job, Shared};

/// A handle to a [`Pool`](crate::Pool), for any thread: its counters, and blocking
/// closures to run on its workers. It does not keep the workers alive: once
/// the pool is dropped, the counters stay where they were and new closures
/// are refused. It does hold the context's [`Remote`](aio_core::Remote) (a handle that
/// outlives the context keeps its doorbell open, as a `Remote` does).
///
/// ```
/// use std::sync::mpsc;
/// use std::time::Duration;
/// use aio_core::{AioContext, testing::SleepMonitor};
/// use aio_pool::Pool;
///
/// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
/// let pool = Pool::new(ctx.remote());
/// let handle = pool.handle();
/// let (tx, rx) = mpsc::channel();
/// handle.spawn_blocking(move || tx.send(6 * 7).unwrap())?;
/// assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(42));
/// drop(pool);
/// assert_eq!(handle.workers(), 0);
/// assert!(handle.spawn_blocking(|| ()).is_err());
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct PoolHandle {
    pub(crate) shared: Arc<Shared>,
}

impl PoolHandle {
    /// Runs `f` on a worker, after the jobs queued before it, as any job
    /// (starting a worker if none is idle). Its result goes wherever `f`
    /// sends it, e.g. to the home thread with
    /// [`Remote::schedule`](aio_core::Remote::schedule). A panic in `f` is
    /// reported by the panic hook and the worker goes on. The pool's drop
    /// waits for a running `f` to return, and drops a queued one unrun.
    ///
    /// # Errors
    ///
    /// `ESHUTDOWN` if the pool has been dropped; the error of
    /// `thread::spawn` if no worker is alive and none could be started.
    /// `f` is dropped then.
    pub fn spawn_blocking(&self, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
        self.shared
            .enqueue(Job::Task(Box::new(f)))
            .map_err(|(e, _job)| e)
    }

    /// How many workers are alive (busy or idle).
    pub fn workers(&self) -> usize {
        self.shared.lock_state().workers
    }

    /// Whether the pool's drop has begun: it takes no more jobs.
    ///
    /// ```
    /// use aio_core::{AioContext, testing::SleepMonitor};
    /// use aio_pool::Pool;
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let pool = Pool::new(ctx.remote());
    /// let handle = pool.handle();
    /// assert!(!handle.is_closed());
    /// drop(pool);
    /// assert!(handle.is_closed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.lock_state().stopping
    }

    /// Blocks until the pool's drop has begun, for at most `timeout`;
    /// whether it has. A closure on a worker can wait with it for the
    /// context to go away (the drop waits for the closure to return).
    ///
    /// ```
    /// use std::time::Duration;
    /// use aio_core::{AioContext, testing::SleepMonitor};
    /// use aio_pool::Pool;
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let pool = Pool::new(ctx.remote());
    /// let handle = pool.handle();
    /// assert!(!handle.wait_closed(Duration::ZERO));
    /// drop(pool);
    /// assert!(handle.wait_closed(Duration::ZERO));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let state = self.shared.lock_state();
        let (state, _) = self
            .shared
            .closed
            .wait_timeout_while(state, timeout, |state| !state.stopping)
            .unwrap_or_else(PoisonError::into_inner);
        state.stopping
    }

    /// How many jobs the workers have run (operations and closures; not
    /// the ones cancelled or dropped before they ran).
    pub fn jobs_run(&self) -> u64 {
        self.shared.jobs_run.load(Ordering::Relaxed)
    }

    /// How many times the workers have woken the context (once per burst
    /// of completions).
    pub fn wakeups(&self) -> u64 {
        self.shared.wakeups.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for PoolHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolHandle")
            .field("workers", &self.workers())
            .field("jobs_run", &self.jobs_run())
            .finish_non_exhaustive()
    }
}
