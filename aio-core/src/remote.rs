//! `Remote`: the handle through which other threads notify a context,
//! schedule work on it, or stop it; what they touch is the context's
//! [`Shared`] part.

use std::fmt;
use std::sync::Arc;

use crate::AioContext;
use crate::bh::RemoteJob;
use crate::shared::{Gone, Shared};

/// A handle to an [`AioContext`] for other threads: `Send + Sync + Clone`.
///
/// ```
/// use std::{sync::mpsc, thread};
/// use aio_core::{AioContext, testing::SleepMonitor};
///
/// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
/// let remote = ctx.remote();
/// let (tx, rx) = mpsc::channel();
/// thread::spawn(move || {
///     remote.schedule(move |_ctx| tx.send(thread::current().id()).unwrap()).unwrap();
/// });
/// while rx.try_recv().is_err() {
///     ctx.poll(true)?;
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone)]
pub struct Remote {
    shared: Arc<Shared<RemoteJob>>,
}

impl Remote {
    pub(crate) fn new(shared: Arc<Shared<RemoteJob>>) -> Remote {
        Remote { shared }
    }

    /// Wakes the context if it is blocked, or makes its next blocking wait
    /// return at once. Writes the doorbell only if the context has
    /// announced that it may block and no earlier notification is pending.
    pub fn notify(&self) {
        self.shared.notify();
    }

    /// Runs `f` once on the home thread, in the bottom-half phase of the
    /// next iteration.
    ///
    /// # Errors
    ///
    /// [`Gone::Context`] if the context has been dropped; `f` is dropped
    /// without running.
    pub fn schedule(&self, f: impl FnOnce(&AioContext) + Send + 'static) -> Result<(), Gone> {
        self.shared.push(RemoteJob::Once(Box::new(f)))
    }

    /// Makes the context's [`run`](AioContext::run) (or
    /// [`run_until`](AioContext::run_until)) return after the iteration in
    /// progress, waking it if it is blocked. If the context is not running,
    /// its next `run` returns at once.
    pub fn stop(&self) {
        self.shared.request_stop();
    }

    /// Whether the context has been dropped.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl AioContext {
    /// A handle for other threads: notify the context or schedule work on it.
    pub fn remote(&self) -> Remote {
        Remote::new(Arc::clone(&self.inner.shared))
    }
}
