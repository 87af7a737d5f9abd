//! Operations: reads, writes and syncs that the loop carries out and
//! completes on the home thread, through the monitor's own engine where it
//! has one (io_uring: the context's ring, so requests and readiness share
//! one wait) and through the context's fallback engine (a thread pool)
//! otherwise.
//!
//! Every operation completes exactly once, through its callback, with its
//! buffer: also when it fails, when it is cancelled, and when no engine
//! could take it (the error then comes at the next iteration). A buffer is
//! never given back, or freed, while the kernel or a worker may still
//! touch it.

mod blocking;
mod buf;
mod dispatch;
mod engine;
mod file;
mod raw;
mod request;
mod socket;
mod syscall;
mod table;
mod transfer;
mod vectored;

use std::cell::RefCell;
use std::io;
use std::rc::Weak;

pub use buf::{IoBuf, IoBufMut};
pub use engine::OpEngine;
pub(crate) use request::OP_BIT;
pub use request::{OpCompletion, OpId, OpKind, OpRequest};
use table::{OpLogic, Route, Table};

use crate::AioContext;
use crate::context::Inner;

/// The context's operations state.
#[derive(Default)]
pub(crate) struct Ops {
    pub(crate) table: RefCell<Table>,
    /// The engine for what the monitor cannot carry out.
    pub(crate) fallback: RefCell<Option<Box<dyn OpEngine>>>,
    /// Completions made by the core itself (an operation no engine took).
    pub(crate) refused: RefCell<Vec<OpCompletion>>,
    /// Reused for each dispatch.
    pub(crate) scratch: RefCell<Vec<OpCompletion>>,
}

/// An operation in flight. Dropping the handle does not cancel it: the
/// operation goes on and its callback runs, as with a detached task.
#[derive(Debug)]
pub struct OpHandle {
    ctx: Weak<Inner>,
    id: OpId,
}

impl OpHandle {
    /// Asks for the operation to be stopped. Its callback still runs, once:
    /// with `ECANCELED` if it was stopped in time, or with its result if it
    /// had finished. A transfer that had moved part of its bytes (a short
    /// read or write, whose rest was still to be sent) is not resubmitted:
    /// it ends with `ECANCELED`, the bytes it moved in the buffer. The
    /// buffer comes back only when the kernel (or the worker) is done with
    /// it. Cancelling a finished operation does nothing.
    pub fn cancel(&self) {
        if let Some(inner) = self.ctx.upgrade() {
            AioContext::cancel_op(&inner, self.id);
        }
    }

    /// The operation's id.
    pub fn id(&self) -> OpId {
        self.id
    }
}

/// The result of a transfer that moved `done` bytes and may have failed.
pub(crate) fn outcome(done: usize, error: Option<i32>) -> io::Result<usize> {
    match error {
        Some(errno) => Err(io::Error::from_raw_os_error(errno)),
        None => Ok(done),
    }
}

impl AioContext {
    /// Puts `op` in the table and sends its first request.
    pub(crate) fn start_op<T: OpLogic>(&self, op: T) -> OpHandle {
        let handle = |id| OpHandle {
            ctx: std::rc::Rc::downgrade(&self.inner),
            id,
        };
        let inserted = self.inner.ops.table.borrow_mut().insert(op, Route::Refused);
        match inserted {
            Ok(id) => {
                self.send_request(id);
                handle(id)
            }
            // The table is full (2^32 operations): the caller's closure is
            // dropped with the table's refusal; nothing was sent.
            Err(_) => handle(OpId(u64::MAX)),
        }
    }

    /// Sends operation `id`'s request to the monitor's engine if it takes
    /// the kind, else to the fallback; if neither can, the operation
    /// completes with the error at the next iteration (`EAGAIN` for an
    /// engine short of room for now, which transfers and syncs take as a
    /// cue to send again).
    pub(crate) fn send_request(&self, id: OpId) {
        let inner = &*self.inner;
        let Some((request, _)) = inner.ops.table.borrow_mut().request(id) else {
            return;
        };
        let kind = request.kind();
        let mut result = Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
        let mut route = Route::Refused;
        {
            let mut monitor = inner.monitor.borrow_mut();
            if let Some(engine) = monitor.ops().filter(|e| e.supports(kind)) {
                // The request points into the operation's buffer, which
                // lives in its boxed slot until `id`'s completion is taken
                // (or is leaked on a failed ring, or drained at drop).
                // SAFETY: so the memory outlives the request, as push asks.
                result = unsafe { engine.push(id, &request) };
                route = Route::Monitor;
            }
        }
        if route == Route::Refused
            && let Some(engine) = inner.ops.fallback.borrow_mut().as_mut()
            && engine.supports(kind)
        {
            // SAFETY: as above.
            result = unsafe { engine.push(id, &request) };
            route = Route::Fallback;
        }
        match result {
            Ok(()) => inner.ops.table.borrow_mut().set_route(id, route),
            Err(e) => {
                let errno = match e.raw_os_error().unwrap_or(libc::EIO) {
                    // The engine is short of room or memory for the moment
                    // (a full submission queue whose submit the kernel
                    // refused): the operation sees `EAGAIN` at the next
                    // iteration and sends its request again; none is
                    // dropped.
                    libc::EBUSY | libc::ENOMEM | libc::EINTR => libc::EAGAIN,
                    errno => errno,
                };
                inner.ops.table.borrow_mut().set_route(id, Route::Refused);
                inner
                    .ops
                    .refused
                    .borrow_mut()
                    .push(OpCompletion { id, result: -errno });
            }
        }
    }

    fn cancel_op(inner: &Inner, id: OpId) {
        let route = {
            let mut table = inner.ops.table.borrow_mut();
            table.cancel(id);
            table.route(id)
        };
        match route {
            Some(Route::Monitor) => {
                if let Some(engine) = inner.monitor.borrow_mut().ops() {
                    engine.cancel(id);
                }
            }
            Some(Route::Fallback) => {
                if let Some(engine) = inner.ops.fallback.borrow_mut().as_mut() {
                    engine.cancel(id);
                }
            }
            Some(Route::Refused) | None => {}
        }
    }

    /// Hands the queued operations to the kernel (or the workers) now,
    /// rather than with the next wait.
    ///
    /// # Errors
    ///
    /// The kernel's error; the requests stay queued for the next wait.
    pub fn submit_now(&self) -> io::Result<()> {
        if let Some(engine) = self.inner.monitor.borrow_mut().ops() {
            engine.submit_now()?;
        }
        if let Some(engine) = self.inner.ops.fallback.borrow_mut().as_mut() {
            engine.submit_now()?;
        }
        Ok(())
    }

    /// How many operations are in flight.
    pub fn ops_in_flight(&self) -> usize {
        self.inner.ops.table.borrow().in_flight()
    }

    /// Which engine carries out operations of `kind`: the monitor's own, the
    /// fallback's, or `None` if neither takes it (such an operation
    /// completes with `EOPNOTSUPP`).
    pub fn op_engine(&self, kind: OpKind) -> Option<&'static str> {
        if let Some(engine) = self.inner.monitor.borrow_mut().ops()
            && engine.supports(kind)
        {
            return Some(engine.name());
        }
        let fallback = self.inner.ops.fallback.borrow();
        fallback
            .as_ref()
            .filter(|e| e.supports(kind))
            .map(|e| e.name())
    }
}
