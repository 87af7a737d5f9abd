//! The server: a listener on the loop that accepts any number of clients,
//! each served by its own `connection` state machine
//! on the same context, and a clean shutdown that finishes in-flight
//! requests.

use std::cell::{Cell, RefCell};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use aio::{AioContext, FdHandler};

use crate::connection::{Connection, ConnectionRef};
use crate::export::Export;
use crate::net::{ListenAddr, Listener};
use crate::shared::Shared;

/// How long a stopping server waits for its clients to read their last
/// replies before it closes their connections anyway.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// An NBD server for one export, ready to [`serve`](Server::serve) on a
/// context. It is `Send`: bind it on one thread and serve on another.
#[derive(Debug)]
pub struct Server {
    listener: Listener,
    export: Export,
    name: String,
}

/// What a server did, returned when it stops.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Connections accepted.
    pub connections: u64,
    /// Requests received in the transmission phase (disconnects and
    /// refused requests included).
    pub requests: u64,
}

impl Server {
    /// A server of `export` on `listener`, with the empty export name.
    pub fn new(listener: Listener, export: Export) -> Server {
        Server {
            listener,
            export,
            name: String::new(),
        }
    }

    /// Names the export (`NBD_OPT_LIST` shows it; clients may ask for it
    /// or for the empty default name).
    #[must_use]
    pub fn export_name(mut self, name: impl Into<String>) -> Server {
        self.name = name.into();
        self
    }

    /// Where the listener is bound.
    ///
    /// # Errors
    ///
    /// If the kernel cannot say.
    pub fn local_addr(&self) -> io::Result<ListenAddr> {
        self.listener.local_addr()
    }

    /// Serves on `ctx` until `shutdown` is triggered and every connection
    /// has finished: once triggered, the listener closes, connections stop
    /// reading requests, and each closes when the replies to the requests
    /// it took are written (or after [`DRAIN_TIMEOUT`]).
    ///
    /// # Errors
    ///
    /// If a handler cannot be registered or the loop fails.
    pub fn serve(self, ctx: &AioContext, shutdown: &Shutdown) -> io::Result<Summary> {
        let shared = Rc::new(Shared::new(self.export, self.name));
        let state = Rc::new(State {
            shared: shared.clone(),
            listener: RefCell::new(Some(self.listener)),
            connections: RefCell::new(Vec::new()),
            accepted: Cell::new(0),
        });
        let listener_fd = state.listener_fd();
        let s = state.clone();
        ctx.set_fd_handler(
            listener_fd,
            Some(FdHandler::new().on_read(move |ctx| s.accept_all(ctx))),
        )?;
        let stop_fd = shutdown.inner.rx.as_raw_fd();
        let s = state.clone();
        let drain_deadline = Rc::new(RefCell::new(None));
        let deadline = drain_deadline.clone();
        ctx.set_fd_handler(
            stop_fd,
            Some(FdHandler::new().on_read(move |ctx| {
                let _ = ctx.set_fd_handler(stop_fd, None);
                *deadline.borrow_mut() = Some(s.begin_stop(ctx));
            })),
        )?;
        let result = loop {
            if shared.stopping.get() && state.prune() == 0 {
                break Ok(());
            }
            if let Err(e) = ctx.poll(true) {
                break Err(e);
            }
        };
        if !shared.stopping.get() {
            ctx.set_fd_handler(stop_fd, None)?;
            state.close_listener(ctx)?;
        }
        drop(drain_deadline);
        result.map(|()| Summary {
            connections: state.accepted.get(),
            requests: shared.requests.get(),
        })
    }
}

/// The server's state on the home thread.
struct State {
    shared: Rc<Shared>,
    listener: RefCell<Option<Listener>>,
    connections: RefCell<Vec<ConnectionRef>>,
    accepted: Cell<u64>,
}

impl State {
    fn listener_fd(&self) -> i32 {
        self.listener
            .borrow()
            .as_ref()
            .map_or(-1, |l| l.as_raw_fd())
    }

    fn accept_all(&self, ctx: &AioContext) {
        loop {
            let accepted = match self.listener.borrow().as_ref() {
                Some(listener) => listener.accept(),
                None => return,
            };
            match accepted {
                Ok(stream) => match Connection::start(ctx, stream, self.shared.clone()) {
                    Ok(conn) => {
                        self.accepted.set(self.accepted.get() + 1);
                        self.prune();
                        self.connections.borrow_mut().push(conn);
                    }
                    Err(e) => log::warn!("nbd: cannot serve a new connection: {e}"),
                },
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Out of fds, or the client left before the accept: the
                // listener stays readable, and the next turn tries again.
                Err(e) => {
                    log::warn!("nbd: accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Forgets closed connections; returns how many are open.
    fn prune(&self) -> usize {
        let mut connections = self.connections.borrow_mut();
        connections.retain(|c| !c.borrow().is_closed());
        connections.len()
    }

    fn close_listener(&self, ctx: &AioContext) -> io::Result<()> {
        let fd = self.listener_fd();
        if fd >= 0 {
            ctx.set_fd_handler(fd, None)?;
        }
        // Removed from the loop first, then closed.
        self.listener.borrow_mut().take();
        Ok(())
    }

    /// Closes the listener and drains every connection; returns the timer
    /// that closes whatever is still open after [`DRAIN_TIMEOUT`].
    fn begin_stop(self: &Rc<State>, ctx: &AioContext) -> aio::Timer {
        self.shared.stopping.set(true);
        if let Err(e) = self.close_listener(ctx) {
            log::warn!("nbd: cannot close the listener: {e}");
        }
        let connections: Vec<ConnectionRef> = self.connections.borrow().clone();
        for conn in &connections {
            Connection::drain(conn, ctx);
        }
        let state = self.clone();
        let timer = ctx.timer(move |ctx| {
            let connections: Vec<ConnectionRef> = state.connections.borrow().clone();
            for conn in &connections {
                Connection::abort(conn, ctx);
            }
        });
        timer.arm_in(DRAIN_TIMEOUT);
        timer
    }
}

/// Stops a server from any thread, or from a signal: cheap to clone, and
/// `Send + Sync`.
#[derive(Clone, Debug)]
pub struct Shutdown {
    inner: Arc<ShutdownInner>,
}

#[derive(Debug)]
struct ShutdownInner {
    tx: UnixStream,
    rx: UnixStream,
}

impl Shutdown {
    /// A shutdown switch, not yet triggered.
    ///
    /// # Errors
    ///
    /// If the socket pair behind it cannot be made.
    pub fn new() -> io::Result<Shutdown> {
        let (tx, rx) = UnixStream::pair()?;
        tx.set_nonblocking(true)?;
        rx.set_nonblocking(true)?;
        Ok(Shutdown {
            inner: Arc::new(ShutdownInner { tx, rx }),
        })
    }

    /// Asks the server to stop (again is harmless).
    pub fn trigger(&self) {
        // A full socket already holds a trigger.
        let _ = (&self.inner.tx).write(&[1]);
    }

    /// Triggers on each of these signals (e.g. `SIGINT`, `SIGTERM`), from
    /// the signal handler, which writes a byte to the socket the loop
    /// watches (`signal-hook`'s self-pipe).
    ///
    /// # Errors
    ///
    /// If a handler cannot be installed.
    pub fn on_signals(&self, signals: &[i32]) -> io::Result<()> {
        for &signal in signals {
            signal_hook::low_level::pipe::register(signal, self.inner.tx.try_clone()?)?;
        }
        Ok(())
    }
}
