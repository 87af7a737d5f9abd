//! Forms (b) and (c): a message counter in shared memory next to an
//! eventfd, in the manner of a virtio queue and its ioeventfd. The
//! receiver's `poll` callback checks the counter while its loop polls; in
//! (b) the sender always writes the eventfd as well, in (c) only when the
//! receiver has announced that it will block (`poll_end` sets the flag,
//! `poll_begin` clears it, and a Dekker pair of fences keeps a message
//! from slipping between the two).
//!
//! Separate because it is the one link with its own protocol: a counter,
//! a flag and fences that must agree between sender and receiver.

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};

use aio::prelude::*;

/// A shared-memory message counter with a notifier, in the manner of a
/// virtio queue and its ioeventfd.
#[derive(Debug)]
pub struct Mailbox {
    /// Messages sent so far.
    seq: AtomicU64,
    /// Whether the receiver wants an eventfd write for the next message
    /// (it is about to block, or polling does not suppress them).
    wanted: AtomicBool,
    /// Whether the sender skips the write while `wanted` is clear (form
    /// c).
    suppress: bool,
    notifier: EventNotifier,
    /// Eventfd writes made.
    writes: AtomicU64,
}

impl Mailbox {
    pub(super) fn new(suppress: bool) -> io::Result<Arc<Mailbox>> {
        Ok(Arc::new(Mailbox {
            seq: AtomicU64::new(0),
            wanted: AtomicBool::new(true),
            suppress,
            notifier: EventNotifier::new()?,
            writes: AtomicU64::new(0),
        }))
    }

    pub(super) fn send(&self) -> io::Result<()> {
        self.seq.fetch_add(1, Ordering::Release);
        if self.suppress {
            // Pairs with the fence in the receiver's `poll_end`: either it
            // sees the new count in its last look, or this sees `wanted`.
            fence(Ordering::SeqCst);
            if !self.wanted.load(Ordering::Relaxed) {
                return Ok(());
            }
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.notifier.set()
    }

    /// Registers the receiver's handler on this mailbox: it calls `deliver`
    /// once per new count, whether the eventfd or the `poll` callback saw
    /// it; in form (c) its `poll_begin` and `poll_end` clear and set again
    /// the flag that asks for eventfd writes.
    pub(super) fn install(
        self: &Arc<Self>,
        ctx: &AioContext,
        deliver: impl FnMut() + 'static,
    ) -> io::Result<()> {
        let seen = Rc::new(Cell::new(0u64));
        let process: Rc<RefCell<dyn FnMut()>> = Rc::new(RefCell::new({
            let (m, seen, mut deliver) = (Arc::clone(self), Rc::clone(&seen), deliver);
            move || {
                let seq = m.seq.load(Ordering::Acquire);
                if seq != seen.get() {
                    seen.set(seq);
                    deliver();
                }
            }
        }));
        let (on_read, on_ready) = (Rc::clone(&process), Rc::clone(&process));
        let (m_read, m_check) = (Arc::clone(self), Arc::clone(self));
        let mut handler = FdHandler::new()
            .on_read(move |_| {
                let _ = m_read.notifier.test_and_clear();
                (on_read.borrow_mut())();
            })
            .on_poll(
                move || m_check.seq.load(Ordering::Acquire) != seen.get(),
                move |_| (on_ready.borrow_mut())(),
            );
        if self.suppress {
            let (begin, end) = (Arc::clone(self), Arc::clone(self));
            handler = handler
                .on_poll_begin(move || begin.wanted.store(false, Ordering::Relaxed))
                .on_poll_end(move || {
                    end.wanted.store(true, Ordering::Relaxed);
                    // Before the loop's last look at the counter.
                    fence(Ordering::SeqCst);
                });
        }
        ctx.set_fd_handler(&self.notifier, Some(handler))
    }

    /// Messages sent so far: what a receiver that spins instead of running
    /// a loop watches.
    pub(super) fn count(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Says, for good, that the receiver polls: in form (c) no message
    /// asks for an eventfd write from now on.
    pub(super) fn receiver_always_polls(&self) {
        self.wanted.store(false, Ordering::Relaxed);
    }

    /// Eventfd writes made to this mailbox so far.
    pub(super) fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }
}
