//! The doorbell: what a notification writes to wake a blocked home thread.
//!
//! In production it is the context's [`EventNotifier`]; the simulated monitor
//! of the `testing` feature installs one that it can see without a system
//! call. The doorbell's fd is registered like any handler's, with a read
//! callback that drains it.

use std::os::fd::{AsRawFd, RawFd};

use crate::EventNotifier;

pub(crate) trait Doorbell: Send + Sync + 'static {
    /// Makes the doorbell fd readable.
    fn ring(&self);
    /// Makes the doorbell fd not readable.
    fn drain(&self);
    /// The fd to register with the monitor.
    fn raw_fd(&self) -> RawFd;
}

impl Doorbell for EventNotifier {
    fn ring(&self) {
        // A write to our own non-blocking eventfd or pipe cannot fail but
        // for EAGAIN, which `set` already treats as success (it is set).
        let _ = self.set();
    }

    fn drain(&self) {
        // Likewise, a read of our own fd fails only with EAGAIN (empty).
        let _ = self.test_and_clear();
    }

    fn raw_fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}
