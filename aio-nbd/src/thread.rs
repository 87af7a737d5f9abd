//! A server on a thread of its own: bind first (so the address is known
//! and clients can connect at once), then serve on a new thread whose
//! context is built there (a context belongs to one thread).

use std::io;
use std::thread::JoinHandle;

use aio::{AioContext, Stats};

use crate::net::ListenAddr;
use crate::server::{Server, Shutdown, Summary};

/// A server running on its thread.
#[derive(Debug)]
pub struct Running {
    addr: ListenAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<io::Result<(Summary, Stats)>>>,
}

/// Starts `server` on a new thread, on the context `make_context` builds
/// there.
///
/// # Errors
///
/// If the shutdown switch cannot be made or the thread cannot start (a
/// context that cannot be built is reported by [`Running::stop`]).
pub fn spawn(
    server: Server,
    make_context: impl FnOnce() -> io::Result<AioContext> + Send + 'static,
) -> io::Result<Running> {
    let addr = server.local_addr()?;
    let shutdown = Shutdown::new()?;
    let stop = shutdown.clone();
    let thread = std::thread::Builder::new()
        .name("aio-nbd".into())
        .spawn(move || {
            let ctx = make_context()?;
            let summary = server.serve(&ctx, &stop)?;
            Ok((summary, ctx.stats()))
        })?;
    Ok(Running {
        addr,
        shutdown,
        thread: Some(thread),
    })
}

impl Running {
    /// Where the server listens.
    pub fn addr(&self) -> &ListenAddr {
        &self.addr
    }

    /// Stops the server (finishing in-flight requests) and returns what it
    /// did, with its context's counters.
    ///
    /// # Errors
    ///
    /// What the server's thread failed with.
    pub fn stop(mut self) -> io::Result<(Summary, Stats)> {
        self.shutdown.trigger();
        self.join()
    }

    fn join(&mut self) -> io::Result<(Summary, Stats)> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("the server's thread panicked")),
            None => Err(io::Error::other("the server was already stopped")),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.shutdown.trigger();
            let _ = self.join();
        }
    }
}
