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
use std::sync::atomic::Ordering;
use std::thread::{self, ThreadId};

use aio_core::RemoteBh;

// The queue's lock and flags: the standard library's, or under `cfg(loom)`
// the model checker's, so that the loom model below checks this code.
#[cfg(loom)]
use loom::sync::{Mutex, MutexGuard, atomic::AtomicBool};
#[cfg(not(loom))]
use std::sync::{Mutex, MutexGuard, atomic::AtomicBool};

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

/// What schedules the runner: its remote bottom half (a stand-in in the
/// loom model).
pub(crate) trait Runner {
    /// Schedules the runner; fails only once the context is gone, when
    /// nothing runs anyway.
    fn schedule(&self);
}

impl Runner for RemoteBh {
    fn schedule(&self) {
        let _ = RemoteBh::schedule(self);
    }
}

/// The woken tasks of one runtime, shared with every waker.
pub(crate) struct RunQueue<T = Runnable, R = RemoteBh> {
    tasks: Mutex<VecDeque<T>>,
    /// Set by the first wake after the runner started its pass.
    runner_scheduled: AtomicBool,
    runner: R,
    /// Set when the runtime is dropped: wakes after that drop the task.
    closed: AtomicBool,
    home: ThreadId,
}

impl<T, R: Runner> RunQueue<T, R> {
    pub(crate) fn new(runner: R) -> RunQueue<T, R> {
        RunQueue {
            tasks: Mutex::new(VecDeque::with_capacity(64)),
            runner_scheduled: AtomicBool::new(false),
            runner,
            closed: AtomicBool::new(false),
            home: thread::current().id(),
        }
    }

    /// Queues a woken task and makes sure the runner will run; gives the
    /// task back if the runtime is gone.
    pub(crate) fn try_push(&self, task: T) -> Result<(), T> {
        let mut tasks = self.lock();
        if self.closed.load(Ordering::Acquire) {
            return Err(task);
        }
        tasks.push_back(task);
        drop(tasks);
        self.schedule_runner();
        Ok(())
    }

    /// Schedules the runner unless a wake since its last start already did.
    pub(crate) fn schedule_runner(&self) {
        if !self.runner_scheduled.swap(true, Ordering::AcqRel) {
            self.runner.schedule();
        }
    }

    /// Starts a runner pass: wakes from now on schedule the runner again.
    /// Returns how many tasks are queued: the pass runs no more than these,
    /// so a task that wakes itself runs once per loop iteration.
    ///
    /// A wake that found the flag set (and so did not schedule the runner)
    /// queued its task before it looked; this swap reads what it left, so
    /// the count below sees that task. (A swap rather than a store: loom
    /// 0.7 lets a store slip before a read-modify-write that ran earlier,
    /// tokio-rs/loom#254.)
    pub(crate) fn start_pass(&self) -> usize {
        self.runner_scheduled.swap(false, Ordering::AcqRel);
        self.lock().len()
    }

    /// The next woken task.
    pub(crate) fn pop(&self) -> Option<T> {
        self.lock().pop_front()
    }

    /// Whether the runtime is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Refuses further tasks; returns those still queued, for the home
    /// thread to drop.
    pub(crate) fn close(&self) -> VecDeque<T> {
        let mut tasks = self.lock();
        self.closed.store(true, Ordering::Release);
        std::mem::take(&mut *tasks)
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<T>> {
        // Nothing panics while the lock is held but an allocation failure;
        // the queue itself is always consistent.
        #[cfg(not(loom))]
        return self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        #[cfg(loom)]
        return self.tasks.lock().unwrap();
    }
}

impl RunQueue {
    /// Queues a woken task (the schedule function of every task).
    pub(crate) fn push(&self, runnable: Runnable) {
        if let Err(runnable) = self.try_push(runnable) {
            self.refuse(runnable);
        }
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
}

/// Loom models of the run queue's protocol against the runner (run by
/// `RUSTFLAGS="--cfg loom" cargo test -p aio-async --release --lib loom_`).
///
/// The runner is its remote bottom half in the real queue; here it is a
/// flag under a mutex with a condition variable that the home thread
/// blocks on until the runner is scheduled, as the loop blocks in its wait
/// until a bottom half is (the bottom half's own scheduling against the
/// blocking wait is aio-core's model). A wake that neither reaches a pass
/// nor schedules the runner leaves the home thread blocked forever, which
/// loom reports as a deadlock.
#[cfg(all(test, loom))]
mod loom_models {
    use loom::sync::{Arc, Condvar, Mutex};

    use super::{RunQueue, Runner};

    #[derive(Default)]
    struct Bell {
        scheduled: Mutex<bool>,
        changed: Condvar,
    }

    impl Runner for Arc<Bell> {
        fn schedule(&self) {
            *self.scheduled.lock().unwrap() = true;
            self.changed.notify_all();
        }
    }

    impl Bell {
        /// Blocks until the runner is scheduled, and takes the schedule
        /// (as a bottom half's run clears its scheduled bit first).
        fn wait_scheduled(&self) {
            let mut scheduled = self.scheduled.lock().unwrap();
            while !*scheduled {
                scheduled = self.changed.wait(scheduled).unwrap();
            }
            *scheduled = false;
        }
    }

    /// The home thread runs passes until it has seen the tasks of
    /// `remote_wakers` other threads and one of its own, blocking whenever
    /// the runner is not scheduled; `preemptions` bounds the search.
    fn model(remote_wakers: usize, preemptions: Option<usize>) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = preemptions;
        builder.check(move || {
            let bell = Arc::new(Bell::default());
            let queue: Arc<RunQueue<usize, Arc<Bell>>> = Arc::new(RunQueue::new(Arc::clone(&bell)));
            let wakers: Vec<_> = (0..remote_wakers)
                .map(|i| {
                    let q = Arc::clone(&queue);
                    loom::thread::spawn(move || q.try_push(i + 1).unwrap())
                })
                .collect();
            queue.try_push(0).unwrap();
            let mut seen = 0;
            while seen < remote_wakers + 1 {
                bell.wait_scheduled();
                for _ in 0..queue.start_pass() {
                    if queue.pop().is_some() {
                        seen += 1;
                    }
                }
            }
            for w in wakers {
                w.join().unwrap();
            }
            assert!(queue.pop().is_none(), "a task was run twice or not at all");
        });
    }

    #[test]
    fn loom_a_remote_wake_is_never_lost_against_a_runner_pass() {
        model(1, None);
    }

    #[test]
    fn loom_two_remote_wakes_and_a_pass_lose_none() {
        // Exhaustive search of three threads takes too long; a lost wake
        // needs few preemptions.
        model(2, Some(3));
    }
}
