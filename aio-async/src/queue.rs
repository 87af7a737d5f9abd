//! The run queue: the tasks that have been woken and wait for the runner,
//! the bottom half that runs them in the loop's dispatch phase.
//!
//! A wake pushes the task here and schedules the runner only if it is not
//! scheduled yet. The same code serves every thread: on the home thread
//! the push is an uncontended lock (no system call, and no allocation once
//! the queue has grown to its working size), and from another thread the
//! runner's [`RemoteBh`] writes the context's eventfd only if the loop has
//! announced that it blocks. However many wakes arrive while the loop
//! blocks, only the first schedules the runner: at most one eventfd write
//! per blocking wait.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};

use aio_core::RemoteBh;

/// Whether a task's future may be dropped on another thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TaskKind {
    /// Spawned with `spawn_local`: its future stays on the home thread.
    Local,
    /// Spawned through a [`Spawner`](crate::Spawner): its future is `Send`.
    Send,
}

/// A task ready to be polled once.
pub(crate) type Runnable = async_task::Runnable<TaskKind>;

/// The woken tasks of one runtime, shared with every waker.
pub(crate) struct RunQueue {
    tasks: Mutex<VecDeque<Runnable>>,
    /// Set by the first wake after the runner started its pass.
    runner_scheduled: AtomicBool,
    runner: RemoteBh,
    /// Set when the runtime is dropped: wakes after that drop the task.
    closed: AtomicBool,
    home: ThreadId,
}

impl RunQueue {
    pub(crate) fn new(runner: RemoteBh) -> RunQueue {
        RunQueue {
            tasks: Mutex::new(VecDeque::with_capacity(64)),
            runner_scheduled: AtomicBool::new(false),
            runner,
            closed: AtomicBool::new(false),
            home: thread::current().id(),
        }
    }

    /// Queues a woken task and makes sure the runner will run.
    pub(crate) fn push(&self, runnable: Runnable) {
        {
            let mut tasks = self.lock();
            if !self.closed.load(Ordering::Acquire) {
                tasks.push_back(runnable);
                drop(tasks);
                self.schedule_runner();
                return;
            }
        }
        self.refuse(runnable);
    }

    /// Schedules the runner unless a wake since its last start already did.
    pub(crate) fn schedule_runner(&self) {
        if !self.runner_scheduled.swap(true, Ordering::AcqRel) {
            // Fails only once the context is gone, when nothing runs anyway.
            let _ = self.runner.schedule();
        }
    }

    /// Starts a runner pass: wakes from now on schedule the runner again.
    /// Returns how many tasks are queued: the pass runs no more than these,
    /// so a task that wakes itself runs once per loop iteration.
    pub(crate) fn start_pass(&self) -> usize {
        self.runner_scheduled.store(false, Ordering::SeqCst);
        self.lock().len()
    }

    /// The next woken task.
    pub(crate) fn pop(&self) -> Option<Runnable> {
        self.lock().pop_front()
    }

    /// Whether the runtime is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuses further tasks; returns those still queued, for the home
    /// thread to drop.
    pub(crate) fn close(&self) -> VecDeque<Runnable> {
        let mut tasks = self.lock();
        self.closed.store(true, Ordering::Release);
        std::mem::take(&mut *tasks)
    }

    /// Drops a task woken after the runtime was dropped, which cancels it.
    /// A local task's future must not be dropped on another thread: the
    /// runtime's drop has dropped every local task it knew of, so only a
    /// task woken while that drop ran can get here, and it is leaked rather
    /// than dropped where its future does not belong.
    fn refuse(&self, runnable: Runnable) {
        if *runnable.metadata() == TaskKind::Local && thread::current().id() != self.home {
            std::mem::forget(runnable);
        } else {
            drop(runnable);
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Runnable>> {
        // Nothing panics while the lock is held but an allocation failure;
        // the queue itself is always consistent.
        self.tasks.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
