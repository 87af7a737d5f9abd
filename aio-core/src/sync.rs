//! The synchronisation primitives that the cross-thread parts of a context
//! (the notify protocol, bottom-half state words, the remote job queue) are
//! built on: the standard library's, or under `cfg(loom)` the model
//! checker's, so that the loom models in `testing/loom_models.rs` check the
//! same code that ships.
//!
//! Only what those three modules share goes through here; `Arc` stays the
//! standard one everywhere (it is shared with code that loom does not
//! model), except [`StateArc`], whose reference count is what the models
//! check.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, fence};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// The `Arc` of a bottom half's state word: its count says whether
/// another thread can reach the word (`bh.rs`), so the models check it.
#[cfg(not(loom))]
pub(crate) use std::sync::Arc as StateArc;

#[cfg(loom)]
pub(crate) use loom::sync::Arc as StateArc;
#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, fence};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom_bool::AtomicBool;

#[cfg(loom)]
mod loom_bool {
    use std::fmt;
    use std::sync::atomic::Ordering;

    /// loom's `AtomicBool`, with `store` made a `swap`.
    ///
    /// loom 0.7 lets a plain store slip in between the read and the write
    /// of a read-modify-write that ran before it on another thread, so a
    /// later load (even on the storing thread) can miss the store: an
    /// execution the memory model forbids (tokio-rs/loom#254). The remote
    /// queue's `has_jobs` flag is stored by notifiers and swapped by the
    /// home thread, which is that pattern; as a swap, the store is ordered
    /// after every read-modify-write that ran before it, as the memory
    /// model requires. Nothing else changes: loads and swaps are loom's.
    #[derive(Default)]
    pub(crate) struct AtomicBool(loom::sync::atomic::AtomicBool);

    impl AtomicBool {
        pub(crate) fn new(value: bool) -> AtomicBool {
            AtomicBool(loom::sync::atomic::AtomicBool::new(value))
        }

        pub(crate) fn load(&self, order: Ordering) -> bool {
            self.0.load(order)
        }

        pub(crate) fn store(&self, value: bool, order: Ordering) {
            self.0.swap(value, order);
        }

        pub(crate) fn swap(&self, value: bool, order: Ordering) -> bool {
            self.0.swap(value, order)
        }
    }

    impl fmt::Debug for AtomicBool {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("AtomicBool")
        }
    }
}
