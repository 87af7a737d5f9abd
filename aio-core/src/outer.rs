//! What a context keeps for an outer event loop that drives it (see
//! `embed.rs`): the events that `prepare` and `check` collected for
//! `dispatch`, and the block that `prepare` announced.

use std::cell::RefCell;

use crate::monitor::ReadyEvent;
use crate::notify::Announcement;

/// The embedding state of a context.
#[derive(Default)]
pub(crate) struct Outer {
    /// What `prepare` and `check` collected for `dispatch`.
    ready: RefCell<Vec<ReadyEvent>>,
    /// The block `prepare` announced, until `check` (or the next
    /// `prepare`) withdraws it.
    announcement: Announcement,
}

impl Outer {
    /// The block the outer loop announces.
    pub(crate) fn announcement(&self) -> &Announcement {
        &self.announcement
    }

    /// Takes the collected events, to add to or to dispatch.
    pub(crate) fn take_ready(&self) -> Vec<ReadyEvent> {
        std::mem::take(&mut *self.ready.borrow_mut())
    }

    /// Puts back the collected events.
    pub(crate) fn put_ready(&self, ready: Vec<ReadyEvent>) {
        *self.ready.borrow_mut() = ready;
    }

    /// Keeps a dispatched list's capacity for the next collection, unless
    /// a nested call collected anew meanwhile.
    pub(crate) fn recycle(&self, mut dispatched: Vec<ReadyEvent>) {
        let mut spare = self.ready.borrow_mut();
        if spare.is_empty() && spare.capacity() < dispatched.capacity() {
            dispatched.clear();
            *spare = dispatched;
        }
    }
}
