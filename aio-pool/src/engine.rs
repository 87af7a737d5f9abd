//! [`Pool`]: the operations engine that the context owns.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use aio_core::{OpCompletion, OpEngine, OpId, OpKind, OpRequest, Remote};

use crate::worker::{Job, SendRequest, Shared};
use crate::{PoolHandle, PoolOptions};

/// An [`OpEngine`] that runs each request on a worker thread.
///
/// The context owns it (through
/// [`ContextBuilder::ops_fallback`](aio_core::ContextBuilder::ops_fallback))
/// and drops it as it is dropped; a [`PoolHandle`] watches it, and runs
/// blocking closures on it, from anywhere.
///
/// ```
/// use aio_core::{ContextBuilder, testing::SleepMonitor};
/// use aio_pool::{Pool, PoolOptions};
/// use std::time::Duration;
///
/// let options = PoolOptions {
///     max_workers: 8,
///     idle_timeout: Duration::from_secs(1),
///     ..PoolOptions::default()
/// };
/// let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
///     .ops_fallback(move |remote| Box::new(Pool::with_options(remote, options)))
///     .build()?;
/// # drop(ctx);
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Pool {
    shared: Arc<Shared>,
}

impl Pool {
    /// A pool for the context behind `remote`, with the default options: at
    /// most [`DEFAULT_MAX_WORKERS`](crate::DEFAULT_MAX_WORKERS) workers, idle ones leaving after
    /// [`DEFAULT_IDLE_TIMEOUT`](crate::DEFAULT_IDLE_TIMEOUT). No worker starts before the first job.
    ///
    /// ```
    /// use aio_core::{AioContext, testing::SleepMonitor};
    /// use aio_pool::Pool;
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let pool = Pool::new(ctx.remote());
    /// assert_eq!(pool.workers(), 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new(remote: Remote) -> Pool {
        Pool::with_options(remote, PoolOptions::default())
    }

    /// A pool for the context behind `remote`, sized by `options`.
    ///
    /// ```
    /// use aio_core::{AioContext, testing::SleepMonitor};
    /// use aio_pool::{Pool, PoolOptions};
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let pool = Pool::with_options(ctx.remote(), PoolOptions { max_workers: 2, ..Default::default() });
    /// assert_eq!(pool.options().max_workers, 2);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn with_options(remote: Remote, options: PoolOptions) -> Pool {
        Pool {
            shared: Arc::new(Shared::new(remote, options)),
        }
    }

    /// The options the pool was made with.
    pub fn options(&self) -> PoolOptions {
        self.shared.options.clone()
    }

    /// A handle that watches the pool and runs blocking closures on it;
    /// see [`PoolHandle`].
    pub fn handle(&self) -> PoolHandle {
        PoolHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// How many workers are alive (busy or idle).
    pub fn workers(&self) -> usize {
        self.handle().workers()
    }

    /// How many jobs the workers have run (operations and closures; not
    /// the ones cancelled or dropped before they ran).
    pub fn jobs_run(&self) -> u64 {
        self.handle().jobs_run()
    }

    /// How many times the workers have woken the context (once per burst
    /// of completions).
    pub fn wakeups(&self) -> u64 {
        self.handle().wakeups()
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("options", &self.shared.options)
            .field("workers", &self.workers())
            .field("jobs_run", &self.jobs_run())
            .finish_non_exhaustive()
    }
}

impl OpEngine for Pool {
    fn name(&self) -> &'static str {
        "thread pool"
    }

    fn supports(&self, kind: OpKind) -> bool {
        matches!(
            kind,
            OpKind::Read
                | OpKind::Write
                | OpKind::Readv
                | OpKind::Writev
                | OpKind::Fsync
                | OpKind::Call
                | OpKind::Accept
                | OpKind::Recv
                | OpKind::Send
                | OpKind::Connect
        )
    }

    unsafe fn push(&mut self, id: OpId, request: &OpRequest) -> io::Result<()> {
        if !self.supports(request.kind()) {
            return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        }
        self.shared
            .enqueue(Job::Op(id, SendRequest(*request)))
            .map_err(|(e, _job)| e)
    }

    fn cancel(&mut self, id: OpId) {
        let job = {
            let mut state = self.shared.lock_state();
            let at = state
                .queue
                .iter()
                .position(|job| matches!(job, Job::Op(queued, _) if *queued == id));
            let job = at.and_then(|at| state.queue.remove(at));
            self.shared.note_queue(&state);
            // A worker waiting on a socket for it gives up.
            if let Some(waiting) = state.waiting.iter_mut().find(|w| w.id == id) {
                waiting.cancelled = true;
                waiting.wake();
            }
            job
        };
        if job.is_some() {
            // On the home thread, which sees `has_completions` before it
            // blocks: no wake-up needed.
            self.shared.complete(
                OpCompletion {
                    id,
                    result: -libc::ECANCELED,
                },
                false,
            );
        }
        // Otherwise a worker runs it (or has run it), or gives up waiting
        // for its socket: its result comes.
    }

    fn submit_now(&mut self) -> io::Result<()> {
        // `push` hands each job to the workers at once.
        Ok(())
    }

    fn has_completions(&self) -> bool {
        self.shared.has_done.load(Ordering::Acquire)
    }

    fn take_completions(&mut self, into: &mut Vec<OpCompletion>) {
        if !self.has_completions() {
            return;
        }
        let mut done = self.shared.lock_done();
        into.append(&mut done);
        self.shared.has_done.store(false, Ordering::Release);
    }

    /// Refuses further jobs, drops the queued ones without running them
    /// (their completions are never reported), stops the workers waiting
    /// for a socket, and joins every worker after its running job (if any)
    /// has finished. The completions reported until then stay to be taken.
    fn close(&mut self) {
        let (queued, handles) = {
            let mut state = self.shared.lock_state();
            state.stopping = true;
            self.shared.stopping.store(true, Ordering::Release);
            for waiting in &state.waiting {
                waiting.wake();
            }
            let taken = (
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.handles),
            );
            self.shared.note_queue(&state);
            taken
        };
        self.shared.work.notify_all();
        self.shared.closed.notify_all();
        drop(queued);
        for handle in handles {
            let _ = handle.join();
        }
    }
}

impl Drop for Pool {
    /// As [`close`](OpEngine::close): the queued jobs dropped unrun, the
    /// workers waiting on a socket stopped, every worker joined.
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aio_core::AioContext;
    use aio_core::testing::SleepMonitor;

    #[test]
    fn it_serves_transfers_and_syncs_but_not_raw_entries() {
        let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new())).unwrap();
        let pool = Pool::new(ctx.remote());
        assert_eq!(pool.name(), "thread pool");
        assert!(pool.supports(OpKind::Read));
        assert!(pool.supports(OpKind::Write));
        assert!(pool.supports(OpKind::Fsync));
        assert!(pool.supports(OpKind::Recv));
        assert!(pool.supports(OpKind::Accept));
        assert!(!pool.supports(OpKind::Raw));
        assert_eq!(pool.workers(), 0, "no worker before the first job");
    }

    #[test]
    fn the_pool_and_its_handles_cross_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<PoolHandle>();
        fn send<T: Send>() {}
        send::<Pool>();
    }
}
