//! The executor of one runtime: spawning, the runner bottom half that
//! polls woken tasks in the loop's dispatch phase, and the shutdown that
//! drops every task on the home thread.

use std::cell::RefCell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::Waker;

use aio_core::{AioContext, BottomHalf};
use futures_lite::FutureExt;
use slab::Slab;

use crate::current::Enter;
use crate::join::JoinHandle;
use crate::queue::{RunQueue, TaskKind};

/// The most tasks one runner pass polls. A pass also polls no task woken
/// during it, so fd handlers and timers get their turn between passes
/// whatever the tasks do.
pub(crate) const MAX_TASKS_PER_PASS: usize = 256;

/// A runtime's executor, on its home thread.
pub(crate) struct Executor {
    ctx: Rc<AioContext>,
    pub(crate) queue: Arc<RunQueue>,
    /// Kept for as long as the executor: dropping it deletes the runner.
    _runner: BottomHalf,
    /// A waker of every live local task, so that the runtime's drop can
    /// have each future dropped here, on the home thread.
    active: RefCell<Slab<Waker>>,
}

impl Executor {
    pub(crate) fn new(ctx: AioContext) -> Rc<Executor> {
        let ctx = Rc::new(ctx);
        Rc::new_cyclic(|weak: &Weak<Executor>| {
            let weak = weak.clone();
            let runner = ctx.bh(move |_ctx| {
                if let Some(exec) = weak.upgrade() {
                    exec.run_pass();
                }
            });
            Executor {
                queue: Arc::new(RunQueue::new(runner.remote())),
                _runner: runner,
                ctx,
                active: RefCell::new(Slab::new()),
            }
        })
    }

    pub(crate) fn context(&self) -> &AioContext {
        &self.ctx
    }

    pub(crate) fn context_weak(&self) -> Weak<AioContext> {
        Rc::downgrade(&self.ctx)
    }

    /// Spawns a local task: it runs at the next runner pass.
    pub(crate) fn spawn<F>(self: &Rc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let queue = Arc::clone(&self.queue);
        if queue.is_closed() {
            return JoinHandle::cancelled();
        }
        let mut active = self.active.borrow_mut();
        let entry = active.vacant_entry();
        let guard = Active {
            key: entry.key(),
            exec: Rc::downgrade(self),
        };
        let future = async move {
            let _guard = guard;
            AssertUnwindSafe(future).catch_unwind().await
        };
        let (runnable, task) = async_task::Builder::new()
            .metadata(TaskKind::Local)
            .spawn_local(move |_| future, move |r| queue.push(r));
        entry.insert(runnable.waker());
        drop(active);
        runnable.schedule();
        JoinHandle::new(task)
    }

    /// Polls the tasks queued when the pass starts (at most
    /// [`MAX_TASKS_PER_PASS`]); reschedules itself if some remain.
    fn run_pass(self: &Rc<Self>) {
        let _current = Enter::new(self);
        let queued = self.queue.start_pass();
        for _ in 0..queued.min(MAX_TASKS_PER_PASS) {
            let Some(runnable) = self.queue.pop() else {
                break;
            };
            runnable.run();
        }
        // Tasks woken during the pass have scheduled the next one; those
        // left over from a long queue need it too.
        if queued > MAX_TASKS_PER_PASS {
            self.queue.schedule_runner();
        }
    }

    /// Cancels every task and drops their futures, here on the home thread;
    /// further wakes and spawns are refused.
    pub(crate) fn shutdown(self: &Rc<Self>) {
        let _current = Enter::new(self);
        // Each live task is woken, so that its runnable is queued...
        let wakers: Vec<Waker> = self.active.borrow_mut().drain().collect();
        for waker in wakers {
            waker.wake();
        }
        // ... and then dropped, which cancels it. A future's drop may wake
        // others: those are dropped as they are refused.
        let queued = self.queue.close();
        drop(queued);
    }
}

/// Takes a local task off the active list when its future is dropped (it
/// completed or was cancelled).
struct Active {
    key: usize,
    exec: Weak<Executor>,
}

impl Drop for Active {
    fn drop(&mut self) {
        if let Some(exec) = self.exec.upgrade()
            && let Ok(mut active) = exec.active.try_borrow_mut()
        {
            active.try_remove(self.key);
        }
    }
}
