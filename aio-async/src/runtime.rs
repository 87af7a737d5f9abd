//! `Runtime`: a context with an executor on it, and `block_on`.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, ThreadId};

use aio_core::{AioContext, Remote};

use crate::current::{self, Blocking, Enter};
use crate::executor::Executor;
use crate::join::JoinHandle;
use crate::spawner::Spawner;

/// An [`AioContext`] that runs futures: tasks are polled by a bottom half,
/// in the loop's dispatch phase, so they interleave with the context's fd
/// handlers, bottom halves and timers, and their fds and poll sources take
/// part in its adaptive busy polling.
///
/// The runtime owns the context; [`context`](Runtime::context) lends it
/// for registering handlers of one's own. Tasks run whenever the context
/// runs: inside [`block_on`](Runtime::block_on), or in any
/// [`poll`](AioContext::poll) or [`run`](AioContext::run) of the context.
/// Dropping the runtime cancels every task (their futures are dropped on
/// this thread) and then drops the context.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use aio_async::Runtime;
/// # let ctx = aio_core::AioContext::with_monitor(Box::new(aio_core::testing::SleepMonitor::new()))?;
/// let rt = Runtime::new(ctx);
/// let answer = rt.block_on(async {
///     let task = aio_async::spawn_local(async { 6 * 7 });
///     task.await.unwrap()
/// })?;
/// assert_eq!(answer, 42);
/// # Ok(())
/// # }
/// ```
pub struct Runtime {
    exec: Rc<Executor>,
    /// The waker of `block_on`'s future, made once: a `block_on` allocates
    /// nothing of its own (they do not nest, so one is enough).
    main_wake: Arc<MainWake>,
}

impl Runtime {
    /// A runtime on `ctx`.
    pub fn new(ctx: AioContext) -> Runtime {
        let main_wake = Arc::new(MainWake::new(ctx.remote()));
        Runtime {
            exec: Executor::new(ctx),
            main_wake,
        }
    }

    /// The context the runtime runs on.
    pub fn context(&self) -> &AioContext {
        self.exec.context()
    }

    /// Spawns a task on this runtime; it first runs at the context's next
    /// iteration. See [`spawn_local`](crate::spawn_local).
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.exec.spawn(future)
    }

    /// A handle that spawns `Send` futures on this runtime from any thread.
    pub fn spawner(&self) -> Spawner {
        Spawner::new(Arc::clone(&self.exec.queue))
    }

    /// Runs the context until `future` completes, and returns its output.
    /// Spawned tasks run meanwhile; those still pending when it returns
    /// stay, and run whenever the context runs again.
    ///
    /// # Errors
    ///
    /// [`NestedBlockOn`](crate::NestedBlockOn) (as an `io::Error` of kind
    /// `Other`) if called inside another `block_on` (of any runtime), from
    /// a task, or from a callback of a loop that `block_on` drives: that
    /// would stop the loop the caller runs on. (A callback of a loop that
    /// the user drives with [`AioContext::run`] is not seen: there it runs
    /// a nested loop, as [`AioContext::poll`] allows.) Otherwise the error
    /// of an iteration of the context; the future is dropped.
    pub fn block_on<F: Future>(&self, future: F) -> io::Result<F::Output> {
        let _blocking = Blocking::enter()?;
        let _current = Enter::new(&self.exec);
        let wake = &self.main_wake;
        // Polled first without waiting for a wake. A waker a future of an
        // earlier `block_on` kept may still set the flag: that costs this
        // future one extra poll, nothing more.
        wake.woken.store(true, Ordering::Release);
        let waker = Waker::from(Arc::clone(wake));
        let mut cx = Context::from_waker(&waker);
        let mut future = pin!(future);
        loop {
            if wake.take()
                && let Poll::Ready(output) = future.as_mut().poll(&mut cx)
            {
                return Ok(output);
            }
            // A future that woke itself as it returned pending wants to
            // be polled again: the iteration must not block.
            let blocking = !wake.is_set();
            self.context().poll(blocking)?;
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.exec.shutdown();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("context", self.context())
            .finish_non_exhaustive()
    }
}

/// The waker of `block_on`'s future: a flag, and a notification when woken
/// from another thread (the home thread is running, not blocked, when it
/// wakes the future itself).
struct MainWake {
    woken: AtomicBool,
    home: ThreadId,
    remote: Remote,
}

impl MainWake {
    fn new(remote: Remote) -> MainWake {
        MainWake {
            woken: AtomicBool::new(true),
            home: thread::current().id(),
            remote,
        }
    }

    fn take(&self) -> bool {
        self.woken.swap(false, Ordering::AcqRel)
    }

    fn is_set(&self) -> bool {
        self.woken.load(Ordering::Acquire)
    }
}

impl Wake for MainWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) && thread::current().id() != self.home {
            self.remote.notify();
        }
    }
}

/// Spawns a task on the current runtime: the one whose task, or whose
/// `block_on`, is running. The task first runs at the context's next
/// iteration; it is polled on this thread only, so its future need not be
/// `Send`. Dropping the returned handle cancels it (see [`JoinHandle`]).
///
/// # Panics
///
/// Outside a runtime (not in a task nor in a `block_on`): use
/// [`Runtime::spawn_local`] there.
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    current::expect_executor("spawn_local").spawn(future)
}
