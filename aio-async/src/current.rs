//! The runtime whose code is running on this thread: set while a runtime
//! runs its tasks and while `block_on` runs, so that `spawn_local`, timers
//! and fds find their context without being handed it.

use std::cell::{Cell, OnceCell, RefCell};
use std::io;
use std::rc::{Rc, Weak};

use aio_core::AioContext;

use crate::executor::Executor;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Executor>>> = const { RefCell::new(None) };
    /// Whether a `block_on` is on this thread's stack.
    static BLOCKING: Cell<bool> = const { Cell::new(false) };
}

/// Makes `exec` the current runtime until dropped, then restores the one
/// that was current before (runtimes may nest: a context's callback may
/// drive another).
pub(crate) struct Enter {
    prev: Option<Rc<Executor>>,
}

impl Enter {
    pub(crate) fn new(exec: &Rc<Executor>) -> Enter {
        let prev = CURRENT.with(|c| c.replace(Some(Rc::clone(exec))));
        Enter { prev }
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let prev = self.prev.take();
        // Dropped outside the borrow: the runtime's last reference may go.
        let replaced = CURRENT.with(|c| c.replace(prev));
        drop(replaced);
    }
}

/// The current runtime, if any.
pub(crate) fn executor() -> Option<Rc<Executor>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// The current runtime, or a panic that says where futures of this crate
/// may be polled.
pub(crate) fn expect_executor(what: &str) -> Rc<Executor> {
    executor().unwrap_or_else(|| {
        panic!(
            "aio-async: {what} needs a runtime: call it from a task or a future run by \
             aio_async::Runtime (block_on or spawn_local)"
        )
    })
}

/// The current runtime's context, for a future's first poll.
pub(crate) fn context() -> io::Result<Weak<AioContext>> {
    executor().map(|e| e.context_weak()).ok_or_else(|| {
        io::Error::other(
            "aio-async: this future must be polled by an aio_async::Runtime \
             (inside block_on or a spawned task)",
        )
    })
}

/// The context a registration (an fd, a poll source) is bound to: the
/// current runtime's, bound at first use by `register`, which registers
/// with it; afterwards the same one, while it lives.
pub(crate) fn bound_context(
    cell: &OnceCell<Weak<AioContext>>,
    register: impl FnOnce(&AioContext) -> io::Result<()>,
) -> io::Result<Rc<AioContext>> {
    if let Some(weak) = cell.get() {
        return weak.upgrade().ok_or_else(gone);
    }
    let weak = context()?;
    let ctx = weak.upgrade().ok_or_else(gone)?;
    register(&ctx)?;
    let _ = cell.set(weak);
    Ok(ctx)
}

/// The error for a registration whose context has been dropped.
pub(crate) fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, aio_core::Gone::Context)
}

/// Marks this thread as inside `block_on` until dropped.
pub(crate) struct Blocking(());

impl Blocking {
    /// Refuses a `block_on` inside another, or inside a task (which runs in
    /// a callback of the loop): it would block the very loop that must run
    /// for the outer one to make progress.
    pub(crate) fn enter() -> io::Result<Blocking> {
        if BLOCKING.with(Cell::get) || executor().is_some() {
            return Err(io::Error::other(NestedBlockOn));
        }
        BLOCKING.with(|b| b.set(true));
        Ok(Blocking(()))
    }
}

impl Drop for Blocking {
    fn drop(&mut self) {
        BLOCKING.with(|b| b.set(false));
    }
}

/// The error of a [`Runtime::block_on`](crate::Runtime::block_on) called
/// inside another `block_on`, from a task, or from a callback of a loop
/// that `block_on` drives. Spawn the future with
/// [`spawn_local`](crate::spawn_local) and await its
/// [`JoinHandle`](crate::JoinHandle) instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NestedBlockOn;

impl std::fmt::Display for NestedBlockOn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "block_on called inside block_on, a task or a loop callback: it would block \
             the loop the caller runs on; spawn the future with spawn_local and await \
             its JoinHandle instead",
        )
    }
}

impl std::error::Error for NestedBlockOn {}
