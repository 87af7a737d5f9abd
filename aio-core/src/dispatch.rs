//! The dispatch phase that ends every pass, `poll`'s and an outer loop's
//! `dispatch` alike: bottom halves, the ready list, completed operations,
//! deferred frees, timers. Dispatching the ready list means resolving each
//! token to its handler (dropping stale ones), running `poll_ready`, read
//! or write, and adapting the poll time of the handlers that ran.

use std::rc::Rc;

use crate::AioContext;
use crate::handler::Node;
use crate::monitor::{Readiness, ReadyEvent};
use crate::pass::Pass;

impl AioContext {
    /// What every pass ends with: runs the bottom halves, the handlers on
    /// `ready`, the callbacks of completed operations, frees deferred
    /// deletions (in the outermost level), then runs expired timers.
    /// Returns whether a user's callback ran.
    pub(crate) fn dispatch_phase(&self, ready: &[ReadyEvent], pass: &Pass) -> bool {
        let mut progress = self.run_bottom_halves();
        progress |= self.dispatch_ready(ready, pass);
        progress |= self.dispatch_ops(pass);
        if self.inner.nesting.is_outermost() {
            self.inner.nesting.free_deferred();
        }
        progress | self.run_timers()
    }

    /// Dispatches the ready list of `pass`. Returns whether a user's
    /// callback ran.
    fn dispatch_ready(&self, ready: &[ReadyEvent], pass: &Pass) -> bool {
        let (iteration, block_ns) = (pass.iteration, pass.block_ns());
        self.mark_fd_events(ready, iteration);
        let mut progress = false;
        for event in ready {
            let node = self.inner.registry.borrow().by_token(event.token).cloned();
            let Some(node) = node else {
                continue; // removed or replaced since the event was seen
            };
            if event.readiness.contains(Readiness::POLL_READY) && node.fd_event.get() == iteration {
                continue; // its fd event runs the read or write callback instead
            }
            if node.is_external() && self.is_external_disabled() {
                continue; // seen again once external handlers are enabled
            }
            if !claim(&node, event.readiness, iteration) {
                continue;
            }
            #[cfg(debug_assertions)]
            check_still_open(self, &node, event.readiness);
            self.inner.window.list(&node, &self.inner.registry);
            let ran = run(self, &node, event.readiness);
            progress |= ran && node.counts_as_progress();
            self.inner.window.adapt(&node, block_ns, pass.waited);
        }
        progress
    }
}

impl AioContext {
    /// One event, one dispatch: when busy polling found a handler's work
    /// and the monitor also reported its fd in the same iteration, only the
    /// fd's callbacks run (as in QEMU: `poll_ready` may have drained what
    /// the read callback then blocks on), and the poll time adapts once.
    /// So before dispatch, the handlers with an fd event are marked, if
    /// there is any `poll_ready` to hold back at all.
    fn mark_fd_events(&self, ready: &[ReadyEvent], iteration: u64) {
        if !ready
            .iter()
            .any(|e| e.readiness.contains(Readiness::POLL_READY))
        {
            return;
        }
        let registry = self.inner.registry.borrow();
        let fd_events = ready
            .iter()
            .filter(|e| !e.readiness.contains(Readiness::POLL_READY));
        for event in fd_events {
            if let Some(node) = registry.by_token(event.token) {
                node.fd_event.set(iteration);
            }
        }
    }
}

/// Records that `node` is dispatched for `readiness` in `iteration`; false
/// if that already happened in this iteration (a duplicate event) or in a
/// later, nested one (the readiness seen here is stale).
fn claim(node: &Node, readiness: Readiness, iteration: u64) -> bool {
    let seq = if readiness.contains(Readiness::POLL_READY) {
        &node.ready_seq
    } else {
        &node.fd_seq
    };
    if seq.get() >= iteration {
        return false;
    }
    seq.set(iteration);
    true
}

/// Panics if the fd of an fd event was closed, or names another file, while
/// its handler is registered: its callbacks would touch a file they were
/// not written for. A debug-build check (one system call per event: an
/// `fstat`, or the monitor's own check).
#[cfg(debug_assertions)]
fn check_still_open(ctx: &AioContext, node: &Node, readiness: Readiness) {
    if readiness.contains(Readiness::POLL_READY) {
        return;
    }
    let registry = ctx.inner.registry.borrow();
    if crate::fd::names_its_file(&mut **ctx.inner.monitor.borrow_mut(), &registry, node) {
        return;
    }
    panic!(
        "fd {} was closed while its handler was registered (and its number may name another \
         file now): remove the handler with set_fd_handler(fd, None) before closing the fd",
        node.fd
    );
}

/// Runs the callbacks that `readiness` calls for, in the directions the
/// handler watches now (hang-up and error come whatever it asked for). A
/// callback may remove its own handler or turn a direction off: the other
/// is then not run.
fn run(ctx: &AioContext, node: &Rc<Node>, readiness: Readiness) -> bool {
    if readiness.contains(Readiness::POLL_READY) {
        return node.run_poll_ready(ctx);
    }
    let _seen = Seen::enter(ctx, readiness);
    let mut ran = false;
    if readiness.wants_read() && node.interest().is_readable() && !node.deleted.get() {
        ran |= node.run_read(ctx);
    }
    if readiness.wants_write() && node.interest().is_writable() && !node.deleted.get() {
        ran |= node.run_write(ctx);
    }
    ran
}

/// The readiness that the running read or write callback was called for,
/// as [`AioContext::readiness`] shows it; the outer callback's comes back
/// when a nested one ends, also when it panics.
struct Seen<'a> {
    ctx: &'a AioContext,
    outer: Readiness,
}

impl<'a> Seen<'a> {
    fn enter(ctx: &'a AioContext, readiness: Readiness) -> Seen<'a> {
        let outer = ctx.inner.readiness.replace(readiness);
        Seen { ctx, outer }
    }
}

impl Drop for Seen<'_> {
    fn drop(&mut self) {
        self.ctx.inner.readiness.set(self.outer);
    }
}
