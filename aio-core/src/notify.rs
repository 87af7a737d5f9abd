//! The notify protocol: when a wake-up must write the doorbell, and when it
//! may be skipped.
//!
//! The home thread *announces* that it may block (and withdraws it after the
//! wait); a notifier sets `notified` and rings the doorbell only when a block
//! is announced and no earlier notification is still pending. The two full
//! fences form a Dekker pair: either the notifier sees the announcement, or
//! the home thread sees `notified` and does not block. So no wake-up is lost,
//! and a burst of notifications costs at most one doorbell write per blocking
//! wait. The atomics live here alone so that a model checker can prove the
//! same code that ships.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use crate::sync::{AtomicBool, AtomicU32, fence};

/// The two flags of the protocol, shared by the home thread and notifiers.
#[derive(Debug, Default)]
pub(crate) struct NotifyState {
    /// How many waits on the home thread are announced (0 or 1 in `poll`;
    /// an outer event loop driving the context may add its own).
    waiting: AtomicU32,
    /// A notification that the home thread has not accepted yet.
    notified: AtomicBool,
}

impl NotifyState {
    /// Records a notification. Returns whether the caller must ring the
    /// doorbell.
    ///
    /// Work that the notification announces (a queued job) must be published
    /// before this call; the release half of the swap orders it.
    pub(crate) fn notify(&self) -> bool {
        if self.notified.swap(true, Ordering::AcqRel) {
            // An earlier notification is pending: its notifier saw the
            // announcement and rang, or the home thread will see the flag
            // before it blocks. Either way this one is covered.
            return false;
        }
        fence(Ordering::SeqCst);
        self.waiting.load(Ordering::Relaxed) != 0
    }

    /// Announces that the home thread is about to block. Returns `false` if
    /// a notification is already pending, in which case the caller must not
    /// block (but must still [`withdraw`](Self::withdraw)).
    pub(crate) fn announce(&self) -> bool {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        !self.notified.load(Ordering::Relaxed)
    }

    /// Withdraws an announcement made by [`announce`](Self::announce).
    pub(crate) fn withdraw(&self) {
        self.waiting.fetch_sub(1, Ordering::Release);
    }

    /// Accepts (clears) a pending notification before the work it announces
    /// is looked at. Returns whether one was pending.
    pub(crate) fn accept(&self) -> bool {
        // Most iterations find none, and a load is much cheaper than the
        // locked swap. A notification that lands after the load stays
        // pending, as one after the swap would: the next iteration accepts
        // it, and a blocking one does not block on it.
        self.notified.load(Ordering::Relaxed) && self.notified.swap(false, Ordering::AcqRel)
    }

    /// Whether a notification is pending; what busy polling watches.
    pub(crate) fn is_notified(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }
}

/// A block the home thread announced, until it is withdrawn: how `poll`
/// and an outer loop's `prepare` announce theirs. Each holds one; the two
/// may stand at once (the protocol counts them).
#[derive(Debug, Default)]
pub(crate) struct Announcement {
    standing: Cell<bool>,
}

impl Announcement {
    /// Announces a block on `notify`, withdrawing this one first if it still
    /// stands. Returns `false` if a notification is already pending: the
    /// caller must not block.
    pub(crate) fn announce(&self, notify: &NotifyState) -> bool {
        if self.standing.replace(true) {
            notify.withdraw();
        }
        notify.announce()
    }

    /// Withdraws the announcement, if it stands.
    pub(crate) fn withdraw(&self, notify: &NotifyState) {
        if self.standing.replace(false) {
            notify.withdraw();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_rings_only_when_a_block_is_announced() {
        let state = NotifyState::default();
        assert!(!state.notify(), "nobody waits: no doorbell");
        assert!(!state.announce(), "pending notification: must not block");
        state.withdraw();
        assert!(state.accept());
        assert!(state.announce(), "nothing pending: may block");
        assert!(state.notify(), "a block is announced: ring");
        assert!(
            !state.notify(),
            "the second of a burst is covered by the first"
        );
        state.withdraw();
        assert!(state.accept());
        assert!(!state.accept());
    }
}
