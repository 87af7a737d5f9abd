//! A thread pool that carries out an [`AioContext`](aio_core::AioContext)'s
//! operations ([`read_at`](aio_core::AioContext::read_at),
//! [`write_at`](aio_core::AioContext::write_at),
//! [`fsync`](aio_core::AioContext::fsync),
//! [`fdatasync`](aio_core::AioContext::fdatasync),
//! [`recv`](aio_core::AioContext::recv), [`send`](aio_core::AioContext::send),
//! [`accept`](aio_core::AioContext::accept) and
//! [`connect`](aio_core::AioContext::connect)) when its monitor has no
//! engine of its own (epoll, poll), in the manner of QEMU's `thread-pool.c`:
//!
//! * workers start on demand, when a job is queued and no worker is idle,
//!   up to a maximum (64 by default), and an idle worker leaves after a
//!   timeout (10 s by default);
//! * a worker makes one plain system call per request and reports its raw
//!   result (a byte count, or a negated errno); the core resubmits what
//!   remains of a short transfer, and after `EAGAIN` or `EINTR`;
//! * a socket request (accept, recv, send, connect) is made without
//!   blocking in the call: while the socket is not ready the worker waits
//!   in `poll(2)` on it and on its own eventfd, which a cancel of that
//!   request or the pool's drop writes (`ECANCELED`), so no socket keeps a
//!   worker past a cancel or the drop (it does hold the worker while it
//!   waits);
//! * completions wait in one list that the home thread takes after each
//!   wait; the worker whose completion finds the list empty wakes the
//!   context through its [`Remote`](aio_core::Remote), so a burst of completions costs one
//!   wake-up, not one per job;
//! * a request cancelled before a worker took it never runs, and completes
//!   with `ECANCELED`; one that is running finishes and reports its result;
//! * dropping the pool (which the context does as it is dropped) drops the
//!   queued jobs without running them, lets the running ones finish, and
//!   joins every worker: no thread is left behind, and no buffer is touched
//!   after the drop returns.
//!
//! ```
//! use std::{cell::RefCell, io::Write, rc::Rc};
//! use aio_core::{ContextBuilder, OpKind, testing::SleepMonitor};
//! use aio_pool::Pool;
//!
//! let ctx = ContextBuilder::new(Box::new(SleepMonitor::new()))
//!     .ops_fallback(|remote| Box::new(Pool::new(remote)))
//!     .build()?;
//! assert_eq!(ctx.op_engine(OpKind::Read), Some("thread pool"));
//!
//! let path = std::env::temp_dir().join(format!("aio-pool-doc-{}", std::process::id()));
//! let mut file = std::fs::File::options()
//!     .read(true).write(true).create(true).truncate(true).open(&path)?;
//! std::fs::remove_file(&path)?;
//! file.write_all(b"hello, pool")?;
//!
//! let got = Rc::new(RefCell::new(None));
//! let g = got.clone();
//! ctx.read_at(&file, Vec::with_capacity(64), 7, move |_, n, buf| {
//!     *g.borrow_mut() = Some((n.unwrap(), buf));
//! });
//! ctx.run_until(|| got.borrow().is_some())?;
//! assert_eq!(got.borrow().as_ref().unwrap(), &(4, b"pool".to_vec()));
//! # Ok::<(), std::io::Error>(())
//! ```

mod engine;
mod handle;
mod options;
mod worker;

pub use engine::Pool;
pub use handle::PoolHandle;
pub use options::{
    DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_WORKERS, DEFAULT_SPIN, PoolOptions, WorkerHook,
};
