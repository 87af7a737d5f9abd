//! The pool's shared state and its workers: the job queue, workers started
//! on demand and leaving when idle, and the completion list that the home
//! thread takes.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Instant;

use aio_core::{OpCompletion, OpId, OpRequest, Remote};

use crate::PoolOptions;

/// The name of the pool's threads.
const THREAD_NAME: &str = "aio-pool";

/// A request as a worker receives it.
///
/// The raw pointers in an [`OpRequest`] make it `!Send`; this wrapper
/// carries it to a worker.
pub(crate) struct SendRequest(pub(crate) OpRequest);

// SAFETY: `OpEngine::push`'s contract makes the core keep the memory the
// request points to valid, and untouched by anyone else, until the engine
// has reported the request's completion or has been dropped. A worker
// touches that memory only while it executes the request, which happens
// before it reports the completion, and the pool's drop joins every worker
// before it returns; so the memory is never touched from two threads at
// once, nor after it may have been freed. The plain values (fd, length,
// offset) are safe to move anywhere, and a call's closure is `Send`
// (`AioContext::run_blocking` asks it to be).
unsafe impl Send for SendRequest {}

/// A job in the queue.
pub(crate) enum Job {
    /// An operation, completed through the completion list.
    Op(OpId, SendRequest),
    /// A blocking closure ([`PoolHandle::spawn_blocking`]).
    Task(Box<dyn FnOnce() + Send>),
}

/// What the workers and the pool share under the state lock.
#[derive(Default)]
pub(crate) struct State {
    /// Jobs that no worker has taken yet, oldest first.
    pub(crate) queue: VecDeque<Job>,
    /// Workers waiting for a job (some may have been signalled already).
    pub(crate) idle: usize,
    /// Idle workers signalled for a job that have not woken yet: each
    /// takes a queued job, so no other worker is signalled for it.
    pub(crate) signalled: usize,
    /// Workers spinning on [`Shared::queued`] before they go idle (at most
    /// one): a job queued now has a taker in it, without a wake-up.
    pub(crate) spinning: usize,
    /// Workers that have finished a job (and may already have reported
    /// it) and are about to look at the queue again: a job queued now has
    /// a taker in them, as in an idle one, so no worker is started for it.
    pub(crate) returning: usize,
    /// Workers that will look at the queue again (those that decided to
    /// leave are not counted).
    pub(crate) workers: usize,
    /// The pool is being dropped: no job is accepted, every worker leaves.
    pub(crate) stopping: bool,
    /// The workers' threads, joined as they are dropped (finished ones are
    /// reaped when a new worker starts).
    pub(crate) handles: Vec<JoinHandle<()>>,
    /// The socket requests that workers are waiting on, which a cancel or
    /// the drop wakes.
    pub(crate) waiting: Vec<Waiting>,
}

impl State {
    /// How many workers other than the caller (a worker that is neither
    /// idle nor spinning) are running a job that is not a wait for a
    /// socket: each of them looks at the queue again soon, so the caller
    /// need not spin for the next job, and does not take a CPU from them.
    fn others_running(&self) -> usize {
        self.workers
            .saturating_sub(1 + self.idle + self.spinning + self.waiting.len())
    }
}

/// A worker waiting for a socket to be ready.
pub(crate) struct Waiting {
    /// The request it waits for.
    pub(crate) id: OpId,
    /// The worker's eventfd, which its `poll` watches too; open for as
    /// long as this entry is in the list.
    pub(crate) wake: RawFd,
    /// A cancel came: the worker gives up with `ECANCELED`.
    pub(crate) cancelled: bool,
}

impl Waiting {
    /// Makes the worker's `poll` return.
    pub(crate) fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: `wake` is an open eventfd (see the field) and the write
        // reads 8 bytes from `one`. A full counter (EAGAIN) means the
        // worker is already woken.
        let _ = unsafe { libc::write(self.wake, (&raw const one).cast(), 8) };
    }
}

/// What the pool, its handles and its workers share.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Signalled for each job that an idle worker should take, and for all
    /// at the drop.
    pub(crate) work: Condvar,
    /// Signalled once, as the drop begins, for [`PoolHandle::wait_closed`](crate::PoolHandle::wait_closed).
    pub(crate) closed: Condvar,
    /// Completions that the home thread has not taken yet.
    pub(crate) done: Mutex<Vec<OpCompletion>>,
    /// Whether `done` holds any: read without the lock by
    /// [`OpEngine::has_completions`].
    pub(crate) has_done: AtomicBool,
    /// The queue's length, for a spinning worker to watch without the
    /// lock; written under it with every change of the queue.
    pub(crate) queued: AtomicUsize,
    /// [`State::stopping`], for a spinning worker to watch without the lock.
    pub(crate) stopping: AtomicBool,
    pub(crate) remote: Remote,
    pub(crate) options: PoolOptions,
    pub(crate) jobs_run: AtomicU64,
    pub(crate) wakeups: AtomicU64,
}

impl Shared {
    pub(crate) fn new(remote: Remote, options: PoolOptions) -> Shared {
        Shared {
            state: Mutex::default(),
            work: Condvar::new(),
            closed: Condvar::new(),
            // Room for a completion from each worker: a burst of them
            // takes no allocation.
            done: Mutex::new(Vec::with_capacity(options.max_workers.max(1))),
            has_done: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            stopping: AtomicBool::new(false),
            remote,
            options,
            jobs_run: AtomicU64::new(0),
            wakeups: AtomicU64::new(0),
        }
    }

    pub(crate) fn lock_state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the lock is held (a task runs outside it,
        // and a panic there is caught), so the state stays consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn lock_done(&self) -> MutexGuard<'_, Vec<OpCompletion>> {
        self.done.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Mirrors the queue's length into [`queued`](Shared::queued); called
    /// under the state lock after every change of the queue.
    pub(crate) fn note_queue(&self, state: &State) {
        self.queued.store(state.queue.len(), Ordering::Release);
    }

    /// Queues `job`, and hands it to a worker that looks at the queue
    /// anyway (one returning from a job, spinning, or already signalled),
    /// else signals an idle one, else starts one. On failure the job is
    /// given back, not queued.
    pub(crate) fn enqueue(self: &Arc<Shared>, job: Job) -> Result<(), (io::Error, Job)> {
        let mut state = self.lock_state();
        if state.stopping {
            return Err((io::Error::from_raw_os_error(libc::ESHUTDOWN), job));
        }
        state.queue.push_back(job);
        self.note_queue(&state);
        // Each of these takes one queued job: if there are at least as many
        // as jobs, this one has a taker without a wake-up.
        if state.returning + state.spinning + state.signalled >= state.queue.len() {
            return Ok(());
        }
        if state.idle > state.signalled {
            state.signalled += 1;
            // Signalled after the unlock, so that the woken worker does not
            // wait for the lock at once.
            drop(state);
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
                self.note_queue(&state);
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
    /// timeout, or the pool stops. A worker that finds the queue empty
    /// after a job, while no other worker spins or runs a job, spins for
    /// [`PoolOptions::spin`] first, so that a job queued soon after costs
    /// its submitter no wake-up and its taker no sleep.
    pub(crate) fn work_loop(&self) {
        if let Some(hook) = &self.options.on_worker_start {
            // The panic hook has reported it; the worker serves anyway.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| hook()));
        }
        // Made for the first socket request this worker waits on, kept for
        // the next ones.
        let mut wake = None;
        let mut may_spin = false;
        let mut state = self.lock_state();
        loop {
            if state.stopping {
                break;
            }
            if let Some(job) = state.queue.pop_front() {
                self.note_queue(&state);
                if let Job::Op(id, request) = &job
                    && request.0.readiness().is_some()
                {
                    self.wait_listed(&mut state, *id, &mut wake);
                }
                drop(state);
                self.run(job, &mut wake);
                state = self.lock_state();
                state.returning -= 1;
                may_spin = true;
                continue;
            }
            if may_spin
                && state.spinning == 0
                && state.others_running() == 0
                && !self.options.spin.is_zero()
            {
                may_spin = false;
                state.spinning += 1;
                drop(state);
                self.spin();
                state = self.lock_state();
                state.spinning -= 1;
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
                // Taken as this worker's signal (a spurious or timed-out
                // wake may take one too: then a later job signals one
                // worker more than it needs, which is harmless).
                state.signalled = state.signalled.saturating_sub(1);
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

    /// Waits, without the lock, until a job is queued, the pool stops, or
    /// the spin time is over.
    fn spin(&self) {
        let until = Instant::now().checked_add(self.options.spin);
        loop {
            for _ in 0..64 {
                if self.queued.load(Ordering::Acquire) != 0 || self.stopping.load(Ordering::Acquire)
                {
                    return;
                }
                std::hint::spin_loop();
            }
            if until.is_some_and(|until| Instant::now() >= until) {
                return;
            }
        }
    }

    pub(crate) fn run(&self, job: Job, wake: &mut Option<OwnedFd>) {
        match job {
            Job::Op(id, request) => {
                let result = match request.0.readiness() {
                    Some((fd, events)) => self.run_socket(id, &request.0, fd, events, &*wake),
                    // SAFETY: see `SendRequest`: the memory stays valid and
                    // ours until the completion below is reported.
                    None => unsafe { request.0.execute() },
                };
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

    /// Lists the worker as waiting on socket request `id` (making its
    /// eventfd if it has none yet; without one it is not listed, and the
    /// request fails), under the lock the job was taken with: a cancel
    /// from then on finds it.
    fn wait_listed(&self, state: &mut State, id: OpId, wake: &mut Option<OwnedFd>) {
        if wake.is_none() {
            // SAFETY: eventfd takes no pointer; a new fd or -1.
            let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if raw < 0 {
                return;
            }
            // SAFETY: eventfd just made `raw`, which nothing else owns.
            *wake = Some(unsafe { OwnedFd::from_raw_fd(raw) });
        }
        if let Some(wake) = wake {
            // A wake-up meant for a request this worker finished before.
            drain(wake.as_raw_fd());
            state.waiting.push(Waiting {
                id,
                wake: wake.as_raw_fd(),
                cancelled: false,
            });
        }
    }

    /// Carries out a socket request without blocking in it: the call is
    /// made non-blocking, and while the socket is not ready the worker
    /// waits in `poll(2)` on it and on its own eventfd, which a cancel of
    /// this request, or the pool's drop, writes (`ECANCELED`). So no
    /// socket holds a worker past a cancel or the drop.
    fn run_socket(
        &self,
        id: OpId,
        request: &OpRequest,
        fd: RawFd,
        events: i16,
        wake: &Option<OwnedFd>,
    ) -> i32 {
        // Listed as waiting (with this eventfd) when the job was taken,
        // under the same lock: a cancel from then on finds it.
        let Some(wake_fd) = wake.as_ref().map(AsRawFd::as_raw_fd) else {
            return -libc::EMFILE; // no eventfd: it could not be cancelled
        };
        let mut first = true;
        let result = loop {
            // SAFETY: see `SendRequest`: the memory stays valid and ours
            // until the completion is reported, after this returns.
            let result = unsafe { request.execute_nonblocking(first) };
            first = false;
            if result != -libc::EAGAIN {
                break result;
            }
            let mut fds = [
                libc::pollfd {
                    fd,
                    events,
                    revents: 0,
                },
                libc::pollfd {
                    fd: wake_fd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // SAFETY: two pollfds, ours, for the call.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
            if n < 0 && last_errno() != libc::EINTR {
                break -last_errno();
            }
            if fds[1].revents != 0 {
                drain(wake_fd);
            }
            let state = self.lock_state();
            let cancelled = state.waiting.iter().any(|w| w.id == id && w.cancelled);
            if state.stopping || cancelled {
                break -libc::ECANCELED;
            }
        };
        let mut state = self.lock_state();
        if let Some(at) = state.waiting.iter().position(|w| w.id == id) {
            state.waiting.swap_remove(at);
        }
        result
    }

    /// Puts a completion on the list; the first of a burst wakes the
    /// context (if `wake`).
    pub(crate) fn complete(&self, completion: OpCompletion, wake: bool) {
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

/// Empties eventfd `fd`'s counter (non-blocking: a no-op if it is 0).
fn drain(fd: RawFd) {
    let mut count: u64 = 0;
    // SAFETY: `fd` is the worker's open eventfd and the read writes 8
    // bytes into `count`.
    let _ = unsafe { libc::read(fd, (&raw mut count).cast(), 8) };
}

/// The calling thread's errno, after a call that failed (EIO if none).
fn last_errno() -> i32 {
    match io::Error::last_os_error().raw_os_error() {
        Some(0) | None => libc::EIO,
        Some(e) => e,
    }
}
