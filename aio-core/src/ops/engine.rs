//! `OpEngine`: what carries operations out. A monitor that shares a ring
//! with its fd registrations offers one (io_uring); a thread pool is one
//! for contexts whose monitor has none.

use std::io;

use super::request::{OpCompletion, OpId, OpKind, OpRequest};

/// Carries out the context's operations and reports their completions.
///
/// # The contract
///
/// * [`push`](OpEngine::push) queues a request; it reaches the kernel (or a
///   worker) no later than the engine's next wait, or at once with
///   [`submit_now`](OpEngine::submit_now). A full queue is submitted and
///   retried, never dropped.
/// * Every request pushed is completed exactly once, by an
///   [`OpCompletion`] that [`take_completions`](OpEngine::take_completions)
///   hands over, unless the engine is dropped first; a cancelled one
///   completes too, with `-ECANCELED` if it was stopped before it ran (or
///   with its result, if it ran first).
/// * [`has_completions`](OpEngine::has_completions) is cheap and makes no
///   system call: the core calls it while it busy-polls.
pub trait OpEngine {
    /// A short name for reports (`"io_uring"`, `"thread pool"`).
    fn name(&self) -> &'static str;

    /// Whether this engine carries out requests of `kind`.
    fn supports(&self, kind: OpKind) -> bool;

    /// Queues `request` under `id`.
    ///
    /// # Safety
    ///
    /// The caller keeps the memory that `request` points to valid, and
    /// untouched, until the engine has reported `id`'s completion or has
    /// been dropped.
    ///
    /// # Errors
    ///
    /// If the request cannot be queued (the engine is shutting down, or
    /// the kernel refused a submission for good); it is then not in flight.
    unsafe fn push(&mut self, id: OpId, request: &OpRequest) -> io::Result<()>;

    /// Asks for `id` to be stopped; it still completes, once.
    fn cancel(&mut self, id: OpId);

    /// Hands the queued requests to the kernel (or the workers) now.
    ///
    /// # Errors
    ///
    /// The kernel's error; the requests stay queued for the next wait.
    fn submit_now(&mut self) -> io::Result<()>;

    /// Whether completions wait to be taken.
    fn has_completions(&self) -> bool;

    /// Moves the completions reported so far into `into`.
    fn take_completions(&mut self, into: &mut Vec<OpCompletion>);

    /// Stops for good, as the context is dropped: requests not started are
    /// dropped (they never complete), running ones are stopped or let
    /// finish, and once this returns nothing touches a request's memory
    /// any more and [`take_completions`](OpEngine::take_completions) hands
    /// over every completion that was reported (so that the core can
    /// release what they carry, an accepted socket's fd). The default does
    /// nothing: for an engine whose drop does the stopping, or that has no
    /// threads.
    fn close(&mut self) {}
}
