//! Running a context inside a tokio runtime (feature `tokio`): the runtime
//! watches the context's [loop fd](AioContext::loop_fd) through `AsyncFd`,
//! and each time it is readable, or the context's next timer is due, the
//! context runs [`check`](AioContext::check) and
//! [`dispatch`](AioContext::dispatch).
//!
//! There is no busy polling in this mode: tokio decides when the thread
//! sleeps, and cannot be asked to spin first. Handlers' `poll` callbacks are
//! simply not called; everything else (fd handlers, bottom halves, timers,
//! remote notifications) works as under [`AioContext::poll`].

use std::convert::Infallible;
use std::io;
use std::os::fd::OwnedFd;
use std::time::Duration;

use ::tokio::io::Interest;
use ::tokio::io::unix::AsyncFd;

use crate::AioContext;

/// Runs `ctx` inside the current tokio runtime until it fails; it never
/// returns `Ok`. The context is not `Send`, so run this on a current-thread
/// runtime (`Runtime::block_on`, or `spawn_local` in a `LocalSet`), beside
/// your own tasks. A context whose monitor cannot be watched is first moved
/// to one that can ([`make_watchable`](crate::make_watchable)).
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use aio::prelude::*;
///
/// let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
/// let ctx = AioContext::new()?;
/// let fired = Rc::new(Cell::new(false));
/// let f = fired.clone();
/// let timer = ctx.timer(move |_| f.set(true));
/// timer.arm_in(Duration::from_millis(1));
/// rt.block_on(async {
///     tokio::select! {
///         result = aio::tokio::drive(&ctx) => { result?; }
///         _ = tokio::time::sleep(Duration::from_millis(50)) => {}
///     }
///     Ok::<(), std::io::Error>(())
/// })?;
/// assert!(fired.get());
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
///
/// The context's or the runtime's error (a monitor that cannot be watched,
/// a failed wait).
pub async fn drive(ctx: &AioContext) -> io::Result<Infallible> {
    crate::make_watchable(ctx)?;
    let mut moves = ctx.monitor_moves();
    let mut watched = watch(ctx)?;
    loop {
        let timeout = ctx.prepare()?;
        // An upgrade or a fallback moves the context to another monitor.
        if ctx.monitor_moves() != moves {
            moves = ctx.monitor_moves();
            watched = watch(ctx)?;
        }
        sleep(&watched, timeout).await?;
        if ctx.check()? {
            ctx.dispatch()?;
        }
    }
}

/// Waits until the loop fd is readable or `timeout` passes.
async fn sleep(watched: &AsyncFd<OwnedFd>, timeout: Option<Duration>) -> io::Result<()> {
    let readable = async {
        // tokio reports readiness edge by edge; `prepare` looked at the
        // monitor after this readiness was cleared, so a later event is a
        // new edge.
        watched.readable().await?.clear_ready();
        Ok(())
    };
    match timeout {
        Some(Duration::ZERO) => Ok(()),
        Some(timeout) => ::tokio::time::timeout(timeout, readable)
            .await
            .unwrap_or(Ok(())),
        None => readable.await,
    }
}

/// Registers the context's loop fd with the runtime.
fn watch(ctx: &AioContext) -> io::Result<AsyncFd<OwnedFd>> {
    let fd = ctx.loop_fd()?;
    // SAFETY: the `AsyncFd` owns `fd` (a duplicate of the monitor's), so it
    // stays open and names the same file for the whole registration.
    let watched = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) };
    watched.map_err(io::Error::from)
}
