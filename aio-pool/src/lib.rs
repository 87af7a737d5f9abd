//! A thread pool that carries out an [`AioContext`](aio_core::AioContext)'s
//! operations ([`read_at`](aio_core::AioContext::read_at),
//! [`write_at`](aio_core::AioContext::write_at),
//! [`fsync`](aio_core::AioContext::fsync) and
//! [`fdatasync`](aio_core::AioContext::fdatasync)) when its monitor has no
//! engine of its own (epoll, poll), in the manner of QEMU's `thread-pool.c`:
//!
//! * workers start on demand, when a job is queued and no worker is idle,
//!   up to a maximum (64 by default), and an idle worker leaves after a
//!   timeout (10 s by default);
//! * a worker makes one plain system call per request and reports its raw
//!   result (a byte count, or a negated errno); the core resubmits what
//!   remains of a short transfer, and after `EAGAIN` or `EINTR`;
//! * completions wait in one list that the home thread takes after each
//!   wait; the worker whose completion finds the list empty wakes the
//!   context through its [`Remote`], so a burst of completions costs one
//!   wake-up, not one per job;
//! * a request cancelled before a worker took it never runs, and completes
//!   with `ECANCELED`; one that is running finishes and reports its result;
//! * dropping the pool (which the context does as it is dropped) drops the
//!   queued jobs without running them, lets the running ones finish, and
//!   joins every worker: no thread is left behind, and no buffer is touched
//!   after the drop returns.
//!
//! ```
//! use std::{cell::RefCell, io::Write, rc::Rc};
//! use aio_core::{ContextBuilder, OpKind, testing::SleepMonitor};
//! use aio_pool::Pool;
//!
//! let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
//!     .ops_fallback(|remote| Box::new(Pool::new(remote)))
//!     .build()?;
//! assert_eq!(ctx.op_engine(OpKind::Read), Some("thread pool"));
//!
//! let path = std::env::temp_dir().join(format!("aio-pool-doc-{}", std::process::id()));
//! let mut file = std::fs::File::options()
//!     .read(true).write(true).create(true).truncate(true).open(&path)?;
//! std::fs::remove_file(&path)?;
//! file.write_all(b"hello, pool")?;
//!
//! let got = Rc::new(RefCell::new(None));
//! let g = got.clone();
//! ctx.read_at(&file, Vec::with_capacity(64), 7, move |_, n, buf| {
//!     *g.borrow_mut() = Some((n.unwrap(), buf));
//! });
//! ctx.run_until(|| got.borrow().is_some())?;
//! assert_eq!(got.borrow().as_ref().unwrap(), &(4, b"pool".to_vec()));
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use aio_core::{OpCompletion, OpEngine, OpId, OpKind, OpRequest, Remote};

/// The most workers a pool runs at once, unless told otherwise (QEMU's
/// `thread-pool-max`).
pub const DEFAULT_MAX_WORKERS: usize = 64;

/// How long a worker waits for a job before it leaves, unless told
/// otherwise (QEMU's 10 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The name of the pool's threads.
const THREAD_NAME: &str = "aio-pool";

/// How a [`Pool`] sizes itself.
///
/// ```
/// use std::time::Duration;
/// use aio_pool::PoolOptions;
///
/// let options = PoolOptions { max_workers: 4, ..PoolOptions::default() };
/// assert_eq!(options.idle_timeout, Duration::from_secs(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most workers at once; 0 is taken as 1. Jobs queued while all of
    /// them are busy wait for one to finish.
    pub max_workers: usize,
    /// How long an idle worker waits for a job before it leaves.
    pub idle_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            max_workers: DEFAULT_MAX_WORKERS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// A request as a worker receives it.
///
/// The raw pointers in an [`OpRequest`] make it `!Send`; this wrapper
/// carries it to a worker.
struct SendRequest(OpRequest);

// SAFETY: `OpEngine::push`'s contract makes the core keep the memory the
// request points to valid, and untouched by anyone else, until the engine
// has reported the request's completion or has been dropped. A worker
// touches that memory only while it executes the request, which happens
// before it reports the completion, and the pool's drop joins every worker
// before it returns; so the memory is never touched from two threads at
// once, nor after it may have been freed. The plain values (fd, length,
// offset) are safe to move anywhere.
unsafe impl Send for SendRequest {}

/// A job in the queue.
enum Job {
    /// An operation, completed through the completion list.
    Op(OpId, SendRequest),
    /// A blocking closure ([`PoolHandle::spawn_blocking`]).
    Task(Box<dyn FnOnce() + Send>),
}

/// What the workers and the pool share under the state lock.
#[derive(Default)]
struct State {
    /// Jobs that no worker has taken yet, oldest first.
    queue: VecDeque<Job>,
    /// Workers waiting for a job (some may have been signalled already).
    idle: usize,
    /// Workers that have finished a job (and may already have reported
    /// it) and are about to look at the queue again: a job queued now has
    /// a taker in them, as in an idle one, so no worker is started for it.
    returning: usize,
    /// Workers that will look at the queue again (those that decided to
    /// leave are not counted).
    workers: usize,
    /// The pool is being dropped: no job is accepted, every worker leaves.
    stopping: bool,
    /// The workers' threads, joined as they are dropped (finished ones are
    /// reaped when a new worker starts).
    handles: Vec<JoinHandle<()>>,
}

/// What the pool, its handles and its workers share.
struct Shared {
    state: Mutex<State>,
    /// Signalled for each job that an idle worker should take, and for all
    /// at the drop.
    work: Condvar,
    /// Completions that the home thread has not taken yet.
    done: Mutex<Vec<OpCompletion>>,
    /// Whether `done` holds any: read without the lock by
    /// [`OpEngine::has_completions`].
    has_done: AtomicBool,
    remote: Remote,
    options: PoolOptions,
    jobs_run: AtomicU64,
    wakeups: AtomicU64,
}

impl Shared {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held (a task runs outside it,
        // and a panic there is caught), so the state stays consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_done(&self) -> MutexGuard<'_, Vec<OpCompletion>> {
        self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job`, and hands it to an idle worker or starts one. On
    /// failure the job is given back, not queued.
    fn enqueue(self: &Arc<Shared>, job: Job) -> Result<(), (io::Error, Job)> {
        let mut state = self.lock_state();
        if state.stopping {
            return Err((io::Error::from_raw_os_error(libc::ESHUTDOWN), job));
        }
        state.queue.push_back(job);
        // Each idle worker takes one of the queued jobs when it wakes: if
        // there are at least as many as jobs, this one has a taker.
        if state.idle + state.returning >= state.queue.len() {
            self.work.notify_one();
            return Ok(());
        }
        if state.workers >= self.options.max_workers.max(1) {
            // A busy worker takes it when it is done with its job.
            return Ok(());
        }
        let (running, finished): (Vec<_>, Vec<_>) = std::mem::take(&mut state.handles)
            .into_iter()
            .partition(|h| !h.is_finished());
        state.handles = running;
        let shared = Arc::clone(self);
        // Started under the lock, so that the drop, which takes the
        // handles under it, joins every worker that was ever started.
        let spawned = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || shared.work_loop());
        let result = match spawned {
            Ok(handle) => {
                state.workers += 1;
                state.handles.push(handle);
                Ok(())
            }
            // A worker exists and takes the job later.
            Err(_) if state.workers > 0 => Ok(()),
            Err(e) => {
                let job = state.queue.pop_back().expect("the job just queued");
                Err((e, job))
            }
        };
        drop(state);
        for handle in finished {
            let _ = handle.join();
        }
        result
    }

    /// A worker's life: take jobs until none comes within the idle
    /// timeout, or the pool stops.
    fn work_loop(&self) {
        let mut state = self.lock_state();
        loop {
            if state.stopping {
                break;
            }
            if let Some(job) = state.queue.pop_front() {
                drop(state);
                self.run(job);
                state = self.lock_state();
                state.returning -= 1;
                continue;
            }
            let deadline = Instant::now().checked_add(self.options.idle_timeout);
            state.idle += 1;
            loop {
                if state.stopping || !state.queue.is_empty() {
                    break;
                }
                state = match deadline {
                    None => self
                        .work
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner),
                    Some(deadline) => {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        self.work
                            .wait_timeout(state, deadline - now)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                };
            }
            state.idle -= 1;
            if state.queue.is_empty() && !state.stopping {
                break; // idle for the whole timeout
            }
        }
        // Under the same lock as the decision to leave: a job queued from
        // now on does not count on this worker.
        state.workers -= 1;
    }

    fn run(&self, job: Job) {
        match job {
            Job::Op(id, request) => {
                // SAFETY: see `SendRequest`: the memory stays valid and
                // ours until the completion below is reported.
                let result = unsafe { execute(&request.0) };
                self.jobs_run.fetch_add(1, Ordering::Relaxed);
                // Counted as returning before the completion goes out: the
                // next job, queued as soon as it is seen, waits for this
                // worker rather than starting another.
                self.lock_state().returning += 1;
                self.complete(OpCompletion { id, result }, true);
            }
            Job::Task(task) => {
                // The panic hook has reported the panic; the worker goes
                // on with the next job.
                let _ = panic::catch_unwind(AssertUnwindSafe(task));
                self.jobs_run.fetch_add(1, Ordering::Relaxed);
                self.lock_state().returning += 1;
            }
        }
    }

    /// Puts a completion on the list; the first of a burst wakes the
    /// context (if `wake`).
    fn complete(&self, completion: OpCompletion, wake: bool) {
        let was_empty = {
            let mut done = self.lock_done();
            let was_empty = done.is_empty();
            done.push(completion);
            self.has_done.store(true, Ordering::Release);
            was_empty
        };
        // A list that was not empty has a wake-up on its way, or the home
        // thread is between its wait and taking the list: either way it
        // finds this completion too.
        if was_empty && wake {
            self.wakeups.fetch_add(1, Ordering::Relaxed);
            self.remote.notify();
        }
    }
}

/// Makes the system call that `request` asks for; its result, or the
/// negated errno.
///
/// # Safety
///
/// A read's `buf` is valid for writes of `len` bytes and a write's for
/// reads of `len` bytes, and nobody else touches them during the call.
unsafe fn execute(request: &OpRequest) -> i32 {
    let result = match *request {
        OpRequest::Read {
            fd,
            buf,
            len,
            offset,
        } => {
            // SAFETY: the caller vouches that `buf` is writable for `len`
            // bytes, by us alone, for the call.
            let n = unsafe { libc::pread(fd, buf.cast(), len as usize, offset as libc::off_t) };
            if n < 0 && errno() == libc::ESPIPE {
                // A pipe or a socket has no offset: read it as io_uring does.
                // SAFETY: as for the pread.
                unsafe { libc::read(fd, buf.cast(), len as usize) }
            } else {
                n
            }
        }
        OpRequest::Write {
            fd,
            buf,
            len,
            offset,
        } => {
            // SAFETY: the caller vouches that `buf` is readable for `len`
            // bytes, unchanged, for the call.
            let n = unsafe { libc::pwrite(fd, buf.cast(), len as usize, offset as libc::off_t) };
            if n < 0 && errno() == libc::ESPIPE {
                // SAFETY: as for the pwrite.
                unsafe { libc::write(fd, buf.cast(), len as usize) }
            } else {
                n
            }
        }
        OpRequest::Readv {
            fd,
            iov,
            iovcnt,
            offset,
        } => {
            // SAFETY: the caller vouches that the `iovcnt` iovecs at `iov`
            // describe writable buffers, by us alone, for the call.
            unsafe { libc::preadv(fd, iov, iovcnt as i32, offset as libc::off_t) }
        }
        OpRequest::Writev {
            fd,
            iov,
            iovcnt,
            offset,
        } => {
            // SAFETY: the caller vouches that the `iovcnt` iovecs at `iov`
            // describe readable buffers, unchanged, for the call.
            unsafe { libc::pwritev(fd, iov, iovcnt as i32, offset as libc::off_t) }
        }
        OpRequest::Fsync { fd, datasync } => {
            // SAFETY: fsync and fdatasync take only an fd.
            let rc = unsafe {
                if datasync {
                    libc::fdatasync(fd)
                } else {
                    libc::fsync(fd)
                }
            };
            rc as isize
        }
        // `push` refuses the kinds it does not support.
        _ => return -libc::EOPNOTSUPP,
    };
    if result < 0 {
        -io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO)
    } else {
        // A request carries at most `u32::MAX` bytes, and the core sends at
        // most 2^30: the count fits.
        i32::try_from(result).unwrap_or(i32::MAX)
    }
}

/// The calling thread's errno.
fn errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

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
/// let options = PoolOptions { max_workers: 8, idle_timeout: Duration::from_secs(1) };
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
    /// most [`DEFAULT_MAX_WORKERS`] workers, idle ones leaving after
    /// [`DEFAULT_IDLE_TIMEOUT`]. No worker starts before the first job.
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
            shared: Arc::new(Shared {
                state: Mutex::default(),
                work: Condvar::new(),
                done: Mutex::default(),
                has_done: AtomicBool::new(false),
                remote,
                options,
                jobs_run: AtomicU64::new(0),
                wakeups: AtomicU64::new(0),
            }),
        }
    }

    /// The options the pool was made with.
    pub fn options(&self) -> PoolOptions {
        self.shared.options
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
            OpKind::Read | OpKind::Write | OpKind::Readv | OpKind::Writev | OpKind::Fsync
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
            at.and_then(|at| state.queue.remove(at))
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
        // Otherwise a worker runs it (or has run it): its result comes.
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
}

impl Drop for Pool {
    /// Refuses further jobs, drops the queued ones without running them
    /// (their completions are never reported), and joins every worker
    /// after its running job (if any) has finished.
    fn drop(&mut self) {
        let (queued, handles) = {
            let mut state = self.shared.lock_state();
            state.stopping = true;
            (
                std::mem::take(&mut state.queue),
                std::mem::take(&mut state.handles),
            )
        };
        self.shared.work.notify_all();
        drop(queued);
        for handle in handles {
            let _ = handle.join();
        }
    }
}

/// A handle to a [`Pool`], for any thread: its counters, and blocking
/// closures to run on its workers. It does not keep the workers alive: once
/// the pool is dropped, the counters stay where they were and new closures
/// are refused. It does hold the context's [`Remote`] (a handle that
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
    shared: Arc<Shared>,
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
