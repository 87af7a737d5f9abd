//! `JoinHandle`: awaiting a task's output, cancelling or detaching it.

use std::any::Any;
use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_task::FallibleTask;

use crate::queue::TaskKind;

/// What a panicking task panicked with.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

type Inner<T> = FallibleTask<Result<T, Payload>, TaskKind>;

/// A handle to a spawned task: awaiting it gives the task's output.
///
/// Dropping the handle cancels the task (its future is dropped, on the
/// home thread, at the runtime's next pass) unless it was
/// [`detach`](JoinHandle::detach)ed. A task that panicked gives
/// [`JoinError::Panicked`], with the panic's payload; the loop and the
/// other tasks go on.
#[must_use = "dropping a JoinHandle cancels its task; call detach() to let it run"]
pub struct JoinHandle<T> {
    task: Cell<Option<Inner<T>>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: async_task::Task<Result<T, Payload>, TaskKind>) -> JoinHandle<T> {
        JoinHandle {
            task: Cell::new(Some(task.fallible())),
        }
    }

    /// The handle of a task that could not be spawned: the runtime is gone.
    pub(crate) fn cancelled() -> JoinHandle<T> {
        JoinHandle {
            task: Cell::new(None),
        }
    }

    /// Lets the task run to completion on its own; its output is dropped.
    pub fn detach(self) {
        if let Some(task) = self.task.take() {
            task.detach();
        }
    }

    /// Cancels the task: its future is dropped at the runtime's next pass
    /// (at once if it is running, when it yields) and awaiting the handle
    /// gives [`JoinError::Cancelled`]. A task that has already finished
    /// keeps nothing: its output is dropped.
    pub fn abort(&self) {
        drop(self.task.take());
    }

    /// Whether the task has finished (completed, panicked or been
    /// cancelled); awaiting the handle then does not wait.
    pub fn is_finished(&self) -> bool {
        let task = self.task.take();
        let finished = task.as_ref().is_none_or(FallibleTask::is_finished);
        self.task.set(task);
        finished
    }
}

// The output is never pinned: it is moved out when ready.
impl<T> Unpin for JoinHandle<T> {}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let slot = self.task.get_mut();
        let Some(task) = slot.as_mut() else {
            return Poll::Ready(Err(JoinError::Cancelled));
        };
        let output = match Pin::new(task).poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Some(Ok(value))) => Ok(value),
            Poll::Ready(Some(Err(payload))) => Err(JoinError::Panicked(payload)),
            Poll::Ready(None) => Err(JoinError::Cancelled),
        };
        *slot = None;
        Poll::Ready(output)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish_non_exhaustive()
    }
}

/// Why a task gave no output.
pub enum JoinError {
    /// It was cancelled: [`JoinHandle::abort`], or its runtime was dropped.
    Cancelled,
    /// It panicked; this is the payload the panic carried.
    Panicked(Box<dyn Any + Send + 'static>),
}

impl JoinError {
    /// Whether the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked(_))
    }

    /// The panic's message, if the task panicked with a string.
    pub fn panic_message(&self) -> Option<&str> {
        let JoinError::Panicked(payload) = self else {
            return None;
        };
        payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled => f.write_str("Cancelled"),
            JoinError::Panicked(_) => f
                .debug_tuple("Panicked")
                .field(&self.panic_message().unwrap_or("<non-string payload>"))
                .finish(),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinError::Cancelled => f.write_str("the task was cancelled"),
            JoinError::Panicked(_) => match self.panic_message() {
                Some(msg) => write!(f, "the task panicked: {msg}"),
                None => f.write_str("the task panicked"),
            },
        }
    }
}

impl std::error::Error for JoinError {}

/// For `?` in functions that return `io::Result`: an error of kind `Other`
/// whose message says whether the task was cancelled or what it panicked
/// with (the panic's payload itself is dropped: it is not `Sync`).
impl From<JoinError> for std::io::Error {
    fn from(e: JoinError) -> std::io::Error {
        std::io::Error::other(e.to_string())
    }
}
