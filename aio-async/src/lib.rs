//! async/await on the `aio` event loop.
//!
//! A [`Runtime`] puts a local executor on an [`AioContext`]: tasks are
//! polled by a bottom half, in the loop's dispatch phase, so they
//! interleave fairly with the context's fd handlers, bottom halves and
//! timers (a pass polls only the tasks woken before it started, so a task
//! that always wakes itself cannot starve an fd handler). A wake on the
//! home thread is a queue push: no system call, no allocation. A wake from
//! another thread goes through the context's remote bottom half: at most
//! one eventfd write per blocking wait, however many wakes.
//!
//! On it: [`spawn_local`] and [`JoinHandle`], [`Runtime::block_on`],
//! [`yield_now`], and a `Send` [`Spawner`] for other threads.
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! use aio::prelude::*;
//! use aio_async::{Runtime, net::{TcpListener, TcpStream}, spawn_local, time::timeout};
//! use futures_lite::{AsyncReadExt, AsyncWriteExt};
//! use std::time::Duration;
//!
//! let rt = Runtime::new(AioContext::new()?);
//! rt.block_on(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     spawn_local(async move {
//!         let (stream, _) = listener.accept().await?;
//!         futures_lite::io::copy(&stream, &mut &stream).await
//!     })
//!     .detach();
//!     let mut client = TcpStream::connect(addr).await?;
//!     client.write_all(b"ping").await?;
//!     let mut reply = [0; 4];
//!     timeout(Duration::from_millis(100), client.read_exact(&mut reply)).await??;
//!     assert_eq!(&reply, b"ping");
//!     Ok::<_, std::io::Error>(())
//! })??;
//! # Ok(())
//! # }
//! ```
//!
//! Also here: [`Async`] fds and the [`net`] sockets, with the futures-io
//! traits; [`time`] (sleep, timeout, interval on the context's nanosecond
//! timers); [`ops`], futures over the context's operations (dropping one
//! cancels its request); [`PollSource`], a check that the loop's busy
//! polling calls while a task waits on it.
//!
//! [`AioContext`]: aio_core::AioContext

mod async_fd;
mod current;
mod executor;
mod join;
pub mod net;
pub mod ops;
mod poll_source;
mod queue;
mod runtime;
mod source;
mod spawner;
pub mod time;
mod waiter;
mod yield_now;

pub use async_fd::Async;
pub use poll_source::PollSource;

pub use current::NestedBlockOn;
pub use join::{JoinError, JoinHandle};
pub use runtime::{Runtime, spawn_local};
pub use spawner::Spawner;
pub use yield_now::{YieldNow, yield_now};
