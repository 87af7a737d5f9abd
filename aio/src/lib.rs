//! `aio`: an event loop for low-latency I/O in the tradition of QEMU's
//! `AioContext`.
//!
//! A context serves fds with read, write and *poll* callbacks, busy-polls
//! adaptively before it blocks, runs bottom halves and nanosecond timers,
//! and wakes across threads cheaply. This crate re-exports the core
//! ([`aio_core`]) and picks the kernel interface at run time.
//!
//! ```
//! use std::{cell::Cell, rc::Rc};
//! use aio::prelude::*;
//!
//! let ctx = AioContext::new()?;
//! let n = Rc::new(EventNotifier::new()?);
//! let hits = Rc::new(Cell::new(0));
//! let (n2, h) = (n.clone(), hits.clone());
//! ctx.set_fd_handler(&*n, Some(FdHandler::new().on_read(move |_ctx| {
//!     n2.test_and_clear().unwrap();
//!     h.set(h.get() + 1);
//! })))?;
//! n.set()?;
//! ctx.poll(true)?;
//! assert_eq!(hits.get(), 1);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Choosing the backend
//!
//! [`AioContextExt::new`] takes the best monitor compiled in (cargo features
//! `io-uring`, `epoll`, `poll`, all on by default) that the machine allows:
//! io_uring; else epoll in *auto mode*, which starts on poll and moves every
//! registration to epoll once [`EPOLL_UPGRADE_AT`] fds are registered; else
//! poll. A refused candidate is recorded with its cause (no kernel support,
//! a seccomp filter or `kernel.io_uring_disabled`, the locked-memory limit, a
//! missing opcode) and logged once through the `log` crate.
//! [`Builder::backend`] or the `AIO_BACKEND` environment variable
//! (`io_uring`, `epoll`, `poll`, `auto`) force one, and a forced backend
//! that is refused is an error, not a silent fallback; the builder's choice
//! wins over the variable. [`AioContext::backend`] says which one runs and
//! why.

mod backend;
mod builder;
mod select;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use aio_core::*;
pub use backend::{Backend, EPOLL_UPGRADE_AT, describe_refusal, make_watchable};
pub use builder::{BACKEND_ENV, Builder};

/// Constructors of [`AioContext`] that pick a backend: import them with
/// `use aio::prelude::*` or `use aio::AioContextExt`.
pub trait AioContextExt: Sized {
    /// A context on the best backend available, polling off.
    ///
    /// # Errors
    ///
    /// If no backend can be set up, or `AIO_BACKEND` names one that is
    /// unknown, not compiled in, or refused.
    fn new() -> std::io::Result<Self>;

    /// A builder to choose the backend, polling parameters and clock.
    fn builder() -> Builder;
}

impl AioContextExt for AioContext {
    fn new() -> std::io::Result<AioContext> {
        Builder::new().build()
    }

    fn builder() -> Builder {
        Builder::new()
    }
}

/// The names most programs need.
pub mod prelude {
    pub use crate::{
        AioContext, AioContextExt, Backend, BottomHalf, EventNotifier, FdHandler, PollParams,
        Remote, Timer,
    };
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
