//! External handlers held back: `disable_external` / `enable_external`
//! nest as a counter, and while it is above zero the monitor stops watching
//! external fds, so that their readiness cannot make the loop spin.

use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

use crate::AioContext;
use crate::handler::Node;

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
        let before = self.inner.registry.borrow().external_disabled();
        let changed = self
            .inner
            .registry
            .borrow_mut()
            .set_external_disabled(count);
        if count > before {
            self.unwatch_all(&changed, before)
        } else {
            self.rewatch_all(&changed)
        }
    }

    /// Takes the external fds out of the monitor, all or none: if the
    /// monitor refuses one, the ones already taken out go back, the count
    /// returns to `before`, and the error names the fd.
    fn unwatch_all(&self, nodes: &[Rc<Node>], before: u32) -> io::Result<()> {
        let mut monitor = self.inner.monitor.borrow_mut();
        for (done, node) in nodes.iter().enumerate() {
            let Some(registration) = node.registration() else {
                continue;
            };
            if let Err(e) = monitor.update(node.fd, Some(registration), None) {
                for node in &nodes[..done] {
                    if let Some(registration) = node.registration() {
                        // Putting back what was just taken out: if even
                        // that fails, the monitor is broken and its next
                        // wait says so.
                        let _ = monitor.update(node.fd, None, Some(registration));
                    }
                }
                drop(monitor);
                self.inner
                    .registry
                    .borrow_mut()
                    .set_external_disabled(before);
                return Err(io::Error::new(e.kind(), format!("fd {}: {e}", node.fd)));
            }
        }
        Ok(())
    }

    /// Puts the external fds back in the monitor. One it refuses loses its
    /// handler (so that the registry never holds what the monitor does
    /// not), and the first error names its fd.
    fn rewatch_all(&self, nodes: &[Rc<Node>]) -> io::Result<()> {
        let mut first_error = None;
        for node in nodes {
            let Some(registration) = node.registration() else {
                continue;
            };
            let updated = self
                .inner
                .monitor
                .borrow_mut()
                .update(node.fd, None, Some(registration));
            if let Err(e) = updated {
                first_error.get_or_insert_with(|| {
                    io::Error::new(e.kind(), format!("fd {}: {e}", node.fd))
                });
                self.drop_unwatched(node.fd);
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
