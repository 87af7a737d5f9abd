//! External handlers held back: `disable_external` / `enable_external`
//! nest as a counter, and while it is above zero the monitor stops watching
//! external fds, so that their readiness cannot make the loop spin.

use std::io;
use std::os::fd::RawFd;

use crate::AioContext;

impl AioContext {
    /// Holds back external handlers: they are not dispatched, and their fds
    /// are not watched (so a readable external fd cannot make the loop
    /// spin), until a matching [`enable_external`](Self::enable_external).
    /// Calls nest.
    pub fn disable_external(&self) -> io::Result<()> {
        let count = self.inner.registry.borrow().external_disabled();
        let count = count.checked_add(1).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "disable_external nested too deep",
            )
        })?;
        self.set_external_disabled(count)
    }

    /// Undoes one [`disable_external`](Self::disable_external); the last one
    /// lets external handlers run again.
    ///
    /// # Errors
    ///
    /// `InvalidInput` if external handlers are not disabled. If the monitor
    /// refuses to watch an external fd again, that handler is removed (its
    /// callbacks dropped) and the error names its fd.
    pub fn enable_external(&self) -> io::Result<()> {
        let count = self.inner.registry.borrow().external_disabled();
        let count = count.checked_sub(1).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "external handlers are not disabled",
            )
        })?;
        self.set_external_disabled(count)
    }

    /// Whether external handlers are disabled.
    pub fn is_external_disabled(&self) -> bool {
        self.inner.registry.borrow().external_disabled() > 0
    }

    fn set_external_disabled(&self, count: u32) -> io::Result<()> {
        let inner = &self.inner;
        let before = inner.registry.borrow().external_disabled();
        let changed = inner.registry.borrow_mut().set_external_disabled(count);
        let disabling = count > before;
        let mut first_error = None;
        for node in changed {
            if let Some(registration) = node.registration() {
                let (old, new) = if disabling {
                    (Some(registration), None)
                } else {
                    (None, Some(registration))
                };
                if let Err(e) = inner.monitor.borrow_mut().update(node.fd, old, new) {
                    first_error.get_or_insert_with(|| {
                        io::Error::new(e.kind(), format!("fd {}: {e}", node.fd))
                    });
                    if !disabling {
                        self.drop_unwatched(node.fd);
                    }
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Removes a handler whose fd the monitor refused to watch again, so
    /// that the registry never holds what the monitor does not.
    fn drop_unwatched(&self, fd: RawFd) {
        let node = self.inner.registry.borrow_mut().remove(fd);
        if let Some(node) = node {
            self.retire(node);
        }
    }
}
