//! Blocking closures run on the context's thread pool, their results
//! delivered on the home thread as an operation's are.

use std::any::Any;
use std::io;
use std::panic::{self, AssertUnwindSafe};

use super::OpHandle;
use super::request::OpRequest;
use super::table::{OpLogic, Step};
use crate::AioContext;

/// The part of a blocking operation that a worker touches: the closure,
/// and its result once it ran.
struct Call<G, T> {
    job: Option<G>,
    out: Option<Result<T, Box<dyn Any + Send>>>,
}

impl<G, T> Call<G, T>
where
    G: FnOnce() -> T + Send,
    T: Send,
{
    /// Runs the closure; a panic is kept as its result.
    ///
    /// # Safety
    ///
    /// `data` is a `Call<G, T>`, valid and touched by nobody else during
    /// the call.
    unsafe fn run(data: *mut ()) -> i32 {
        // SAFETY: the caller's promise.
        let call = unsafe { &mut *data.cast::<Call<G, T>>() };
        if let Some(job) = call.job.take() {
            call.out = Some(panic::catch_unwind(AssertUnwindSafe(job)));
        }
        0
    }
}

/// A blocking closure and its callback.
struct Blocking<G, T, F> {
    call: Call<G, T>,
    result: i32,
    done: F,
}

impl<G, T, F> OpLogic for Blocking<G, T, F>
where
    G: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
    F: FnOnce(&AioContext, io::Result<T>) + 'static,
{
    fn request(&mut self) -> OpRequest {
        // `Call<G, T>` is `Send` (both are): a worker may run it. It stays
        // in this operation's box, in place, until its completion.
        OpRequest::Call {
            call: Call::<G, T>::run,
            data: (&raw mut self.call).cast(),
        }
    }

    fn step(&mut self, result: i32) -> Step {
        self.result = result;
        Step::Done
    }

    fn finish(self, ctx: &AioContext) {
        let outcome = match (self.result, self.call.out) {
            (0, Some(Ok(value))) => Ok(value),
            (0, Some(Err(_panic))) => Err(io::Error::other("run_blocking: the closure panicked")),
            (r, _) if r == -libc::EOPNOTSUPP => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "run_blocking: no engine of this context runs blocking closures \
                 (give it a thread pool: ContextBuilder::ops_fallback)",
            )),
            (r, _) if r < 0 => Err(io::Error::from_raw_os_error(-r)),
            (_, _) => Err(io::Error::other("run_blocking: the closure did not run")),
        };
        (self.done)(ctx, outcome);
    }
}

impl AioContext {
    /// Runs the blocking closure `f` on the context's thread pool, and
    /// calls `done` with what it returned on the home thread, in the
    /// dispatch phase, as an operation's completion (a burst of them costs
    /// the home thread one wake-up). The core names no pool: the closure
    /// goes to whichever engine of the context runs closures (the thread
    /// pool the `aio` facade gives every context, whatever its monitor).
    ///
    /// `done` always runs, once: with `Unsupported` if no engine runs
    /// closures, with `ECANCELED` if [cancelled](OpHandle::cancel) before
    /// a worker took it (a running closure is not interrupted), and with
    /// an error if `f` panicked. A context dropped first drops a queued
    /// `f` unrun, waits for a running one, and runs no `done`.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// use aio_core::{ContextBuilder, testing::{InlineEngine, SleepMonitor}};
    ///
    /// let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
    ///     .ops_fallback(|_| Box::new(InlineEngine::new()))
    ///     .build()?;
    /// let got = Rc::new(Cell::new(None));
    /// let g = got.clone();
    /// ctx.run_blocking(|| 6 * 7, move |_, answer| g.set(Some(answer.unwrap())));
    /// ctx.run_until(|| got.get().is_some())?;
    /// assert_eq!(got.get(), Some(42));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_blocking<G, T, F>(&self, f: G, done: F) -> OpHandle
    where
        G: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
        F: FnOnce(&AioContext, io::Result<T>) + 'static,
    {
        self.start_op(Blocking {
            call: Call {
                job: Some(f),
                out: None,
            },
            result: 0,
            done,
        })
    }
}
