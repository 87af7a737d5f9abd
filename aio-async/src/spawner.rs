//! `Spawner`: spawning `Send` futures on a runtime from any thread.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use aio_core::Gone;
use futures_lite::FutureExt;

use crate::join::JoinHandle;
use crate::queue::{RunQueue, TaskKind};

/// Spawns `Send` futures on a runtime from any thread (`Send + Sync +
/// Clone`); they run on the runtime's home thread. A future that is not
/// `Send` cannot be given to it: the compiler refuses it.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// # let ctx = aio_core::AioContext::with_monitor(Box::new(aio_core::testing::SleepMonitor::new()))?;
/// let rt = aio_async::Runtime::new(ctx);
/// let spawner = rt.spawner();
/// let task = std::thread::spawn(move || spawner.spawn(async { 1 + 1 }).unwrap())
///     .join()
///     .unwrap();
/// assert_eq!(rt.block_on(task)?.unwrap(), 2);
/// # Ok(())
/// # }
/// ```
///
/// A future that is not `Send` (here, one holding an `Rc`) does not
/// compile:
///
/// ```compile_fail
/// # fn main() -> std::io::Result<()> {
/// # let ctx = aio_core::AioContext::with_monitor(Box::new(aio_core::testing::SleepMonitor::new()))?;
/// let rt = aio_async::Runtime::new(ctx);
/// let local = std::rc::Rc::new(1);
/// let _task = rt.spawner().spawn(async move { *local });
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Spawner {
    queue: Arc<RunQueue>,
}

impl Spawner {
    pub(crate) fn new(queue: Arc<RunQueue>) -> Spawner {
        Spawner { queue }
    }

    /// Spawns `future` on the runtime's home thread.
    ///
    /// # Errors
    ///
    /// [`Gone::Context`] if the runtime has been dropped.
    pub fn spawn<F>(&self, future: F) -> Result<JoinHandle<F::Output>, Gone>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        if self.queue.is_closed() {
            return Err(Gone::Context);
        }
        let queue = Arc::clone(&self.queue);
        let future = AssertUnwindSafe(future).catch_unwind();
        let (runnable, task) = async_task::Builder::new()
            .metadata(TaskKind::Send)
            .spawn(move |_| future, move |r| queue.push(r));
        runnable.schedule();
        Ok(JoinHandle::new(task))
    }

    /// Whether the runtime has been dropped.
    pub fn is_closed(&self) -> bool {
        self.queue.is_closed()
    }
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner")
            .field("closed", &self.is_closed())
            .finish()
    }
}
