//! The raw entry point: a request its caller builds for the backend itself
//! (an io_uring submission queue entry, as QEMU 10.2's `aio_add_sqe` takes
//! one), completed with the kernel's result as it is.

use super::OpHandle;
use super::request::OpRequest;
use super::table::{OpLogic, Step};
use crate::AioContext;

/// A raw request and its callback.
struct Raw<F> {
    sqe: [u8; 64],
    result: i32,
    done: F,
}

impl<F> OpLogic for Raw<F>
where
    F: FnOnce(&AioContext, i32) + 'static,
{
    fn request(&mut self) -> OpRequest {
        OpRequest::Raw { sqe: self.sqe }
    }

    fn step(&mut self, result: i32) -> Step {
        self.result = result;
        Step::Done
    }

    fn finish(self, ctx: &AioContext) {
        (self.done)(ctx, self.result);
    }
}

impl AioContext {
    /// Queues a request in a backend's own format, the 64 bytes of an
    /// io_uring submission queue entry, whose `user_data` the engine sets;
    /// `done` gets the kernel's result as it is (bytes or a negated errno;
    /// short transfers are not resubmitted). A backend crate wraps this in
    /// a typed entry point (`fdmon_uring::submit_sqe`). Without an engine
    /// that takes raw requests, `done` gets `-EOPNOTSUPP`.
    ///
    /// # Safety
    ///
    /// Whatever memory the entry points to (buffers, iovecs, addresses)
    /// stays valid, and is not touched by anything else, until `done` runs
    /// (or the context's drop returns); the entry must be one the kernel
    /// accepts as a request of its own (not a link, nor one that refers to
    /// other requests' `user_data`).
    pub unsafe fn submit_raw<F>(&self, sqe: [u8; 64], done: F) -> OpHandle
    where
        F: FnOnce(&AioContext, i32) + 'static,
    {
        self.start_op(Raw {
            sqe,
            result: 0,
            done,
        })
    }
}
