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
//!
//! # Cargo features
//!
//! | feature | what it brings | its place in the automatic choice |
//! | --- | --- | --- |
//! | `io-uring` (default) | [`Backend::IoUring`]: the io_uring monitor (crate `fdmon-uring`, over the `io-uring` crate) | tried first; a ring that fails after setup moves its registrations to epoll (if `epoll` is on) |
//! | `epoll` (default) | [`Backend::Epoll`]: the epoll monitor (crate `fdmon-epoll`); with `poll` too, the auto mode that starts on poll and moves to epoll at [`EPOLL_UPGRADE_AT`] handlers | second; the fallback of a failed ring; the monitor [`make_watchable`] moves to when io_uring cannot be watched |
//! | `poll` (default) | [`Backend::Poll`]: the `ppoll(2)` monitor (crate `fdmon-poll`) | last; the start of epoll's auto mode |
//! | `tokio` | `aio::tokio::drive`: a context served inside a current-thread tokio runtime | none (not a backend) |
//!
//! A backend whose feature is off is no candidate of the automatic choice
//! (and is not reported as skipped); [`Backend::open`], a builder that
//! forces it and `AIO_BACKEND` naming it fail with
//! `ErrorKind::Unsupported`, naming the feature to enable.
//! [`Backend::is_compiled_in`] says which are in. A build can keep only
//! what it runs on, for example:
//!
//! ```toml
//! [dependencies]
//! aio = { version = "0.1", default-features = false, features = ["epoll", "poll"] }
//! ```
//!
//! A build with none of the three backends (`default-features = false`
//! alone) is allowed: it is the core re-exported, for a program that brings
//! a monitor of its own (an [`FdMonitor`] given to
//! [`ContextBuilder::new`]). There, [`AioContextExt::new`] and
//! [`Builder::build`] fail with `ErrorKind::Unsupported` and say that no
//! backend is compiled in and which features to enable.

#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
mod builder;
mod select;
#[cfg(feature = "tokio")]
pub mod tokio;

pub use aio_core::*;
pub use aio_pool::{PoolOptions, WorkerHook};
pub use backend::{Backend, EPOLL_UPGRADE_AT, describe_refusal, make_watchable};
pub use builder::{BACKEND_ENV, BackendError, Builder};

/// Constructors of [`AioContext`] that pick a backend: import them with
/// `use aio::prelude::*` or `use aio::AioContextExt`.
///
/// They are a trait, not inherent methods, because `AioContext` is defined
/// in `aio-core`, which holds no backend (so that a program with a monitor
/// of its own needs none of them); only the facade knows the backends, and
/// Rust lets a crate add methods to another crate's type through a trait
/// only. The prelude brings the trait in with the rest.
///
/// ```
/// use aio::prelude::*;
///
/// let ctx = AioContext::new()?; // AioContextExt::new
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait AioContextExt: Sized {
    /// A context on the best backend available, polling off.
    ///
    /// # Errors
    ///
    /// If no backend can be set up (`Unsupported` if none is compiled in),
    /// or `AIO_BACKEND` names one that is unknown, not compiled in, or
    /// refused.
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
        AioContext, AioContextExt, Backend, BottomHalf, EventNotifier, FdHandler, Interest,
        PollParams, Readiness, Remote, Timer,
    };
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
