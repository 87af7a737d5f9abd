//! How a message crosses from one aio loop to the other, which is what
//! tells the forms apart on the aio side: an eventfd write in (a), the
//! shared-memory [`Mailbox`] in (b) and (c), one byte on a socket pair in
//! (d). The aio pair sends and installs its handlers through [`Link`] and
//! never looks at the form.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

use aio::prelude::*;

use super::mailbox::Mailbox;
use crate::sys;

/// One side of a message link, as seen by the side that receives on it.
#[derive(Clone)]
pub(super) enum Link {
    /// Each message is an eventfd write.
    Eventfd(Arc<EventNotifier>),
    /// A counter in shared memory, and an eventfd written always or only
    /// when the receiver asked for it.
    Mailbox(Arc<Mailbox>),
    /// One byte on a stream socket pair: `rx` is the receiver's end, `tx`
    /// the sender's.
    Socket { rx: Arc<OwnedFd>, tx: Arc<OwnedFd> },
}

impl Link {
    /// Sends one message to the side that receives on this link.
    pub(super) fn send(&self) -> io::Result<()> {
        match self {
            Link::Eventfd(n) => n.set(),
            Link::Mailbox(m) => m.send(),
            Link::Socket { tx, .. } => sys::send_byte(tx.as_raw_fd()),
        }
    }

    /// Registers the handler that calls `deliver` once per message received
    /// on this link.
    pub(super) fn install(
        &self,
        ctx: &AioContext,
        deliver: impl FnMut() + 'static,
    ) -> io::Result<()> {
        match self {
            Link::Eventfd(n) => {
                let (n2, mut deliver) = (Arc::clone(n), deliver);
                ctx.set_fd_handler(
                    &**n,
                    Some(FdHandler::new().on_read(move |_| {
                        if n2.test_and_clear().unwrap_or(false) {
                            deliver();
                        }
                    })),
                )
            }
            Link::Socket { rx, .. } => {
                let (raw, mut deliver) = (rx.as_raw_fd(), deliver);
                ctx.set_fd_handler(
                    raw,
                    Some(FdHandler::new().on_read(move |_| {
                        if sys::recv_bytes(raw).unwrap_or(0) > 0 {
                            deliver();
                        }
                    })),
                )
            }
            Link::Mailbox(m) => m.install(ctx, deliver),
        }
    }

    /// Eventfd writes made to this link so far.
    pub(super) fn writes(&self) -> u64 {
        match self {
            Link::Mailbox(m) => m.writes(),
            _ => 0,
        }
    }
}
