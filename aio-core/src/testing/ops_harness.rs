//! How the operations suite gets its contexts: one path (an engine) per
//! harness, and what that engine can do that others cannot.

use std::fmt;
use std::io;

use crate::AioContext;

/// Makes contexts whose operations take one path (the monitor's ring, a
/// thread pool, ...), for [`ops_conformance_tests!`](crate::ops_conformance_tests).
///
/// ```no_run
/// use aio_core::{ContextBuilder, testing::{InlineEngine, OpsHarness, SleepMonitor}};
///
/// let harness = OpsHarness::new("inline", || {
///     ContextBuilder::new(Box::new(SleepMonitor::new()))
///         .ops_fallback(|_| Box::new(InlineEngine::new()))
///         .build()
/// });
/// # let _ = harness;
/// ```
pub struct OpsHarness {
    name: &'static str,
    make: Box<dyn Fn() -> io::Result<AioContext>>,
    /// Whether the engine can stop an operation that has started (a ring
    /// can; a worker blocked in a system call cannot).
    pub(crate) stops_running: bool,
}

impl OpsHarness {
    /// A harness named `name` (the engine that `make`'s contexts use).
    pub fn new(
        name: &'static str,
        make: impl Fn() -> io::Result<AioContext> + 'static,
    ) -> OpsHarness {
        OpsHarness {
            name,
            make: Box::new(make),
            stops_running: false,
        }
    }

    /// Says that the engine stops operations that have started (io_uring
    /// cancels a read blocked on a pipe).
    #[must_use]
    pub fn stops_running_ops(mut self) -> OpsHarness {
        self.stops_running = true;
        self
    }

    /// A fresh context.
    ///
    /// # Panics
    ///
    /// If the context cannot be made.
    pub fn context(&self) -> AioContext {
        let ctx = (self.make)().expect("a context for the operations suite");
        assert!(
            ctx.op_engine(crate::OpKind::Read).is_some(),
            "{}: the context has no engine for reads",
            self.name
        );
        ctx
    }

    /// The harness's name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

impl fmt::Debug for OpsHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpsHarness")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}
