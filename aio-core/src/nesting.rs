//! The levels of `poll` on the stack: how deep they nest, the ready list of
//! each, the number of the current iteration, and the removed handlers
//! whose callbacks are dropped once the outermost level ends (their nodes
//! kept, emptied, for the next handlers added: an add allocates nothing in
//! a steady state).

use std::cell::{Cell, RefCell};
use std::io;
use std::rc::Rc;

use crate::handler::Node;
use crate::monitor::ReadyEvent;

/// How deep [`AioContext::poll`](crate::AioContext::poll) may nest: a `poll`
/// called from a callback this many levels down returns an error instead of
/// recursing.
///
/// The loop's own frames take about 1.3 KiB of stack per level in a debug
/// build and 0.6 KiB in a release build (measured with a read callback that
/// nests, on every monitor), so 256 levels cost at most about 350 KiB: safe
/// on a 2 MiB thread stack (the default for spawned threads), with room for
/// the callbacks' own frames. Real programs nest a few levels (waiting for
/// one request inside a callback); a deeper nest is a runaway recursion,
/// which a clear error serves better than a stack overflow.
pub const MAX_NESTING: u32 = 256;

/// How many emptied nodes are kept for reuse: enough for a server that
/// adds and removes a burst of handlers at a time, and a bound on what a
/// context that once had many handlers keeps after they are gone.
const SPARE_NODES: usize = 64;

/// The nesting state of a context.
#[derive(Default)]
pub(crate) struct Nesting {
    /// How many `poll` (or `dispatch`) calls are on the stack.
    depth: Cell<u32>,
    /// Removed handlers whose callbacks are dropped when `depth` reaches 0.
    deferred: RefCell<Vec<Rc<Node>>>,
    /// Nodes of removed handlers, emptied, for the next handlers added.
    spare: RefCell<Vec<Rc<Node>>>,
    /// Ready lists, one per nesting level, reused.
    ready_lists: RefCell<Vec<Vec<ReadyEvent>>>,
    /// Number of the current iteration; orders readiness across nesting.
    iteration: Cell<u64>,
}

impl Nesting {
    /// Enters one level deeper; refused at [`MAX_NESTING`] levels.
    pub(crate) fn enter(&self) -> io::Result<Level<'_>> {
        let depth = self.depth.get();
        if depth >= MAX_NESTING {
            return Err(io::Error::other(format!(
                "poll nested {depth} levels deep, the limit (aio_core::MAX_NESTING)"
            )));
        }
        self.depth.set(depth + 1);
        Ok(Level { nesting: self })
    }

    /// Whether a `poll` is on the stack (the caller is a callback).
    pub(crate) fn inside_poll(&self) -> bool {
        self.depth.get() > 0
    }

    /// Whether the running level is the outermost one.
    pub(crate) fn is_outermost(&self) -> bool {
        self.depth.get() == 1
    }

    /// Starts the next iteration; returns its number.
    pub(crate) fn next_iteration(&self) -> u64 {
        let iteration = self.iteration.get() + 1;
        self.iteration.set(iteration);
        iteration
    }

    /// The number of the latest iteration.
    pub(crate) fn iteration(&self) -> u64 {
        self.iteration.get()
    }

    /// A ready list for one level, given back when it is dropped.
    pub(crate) fn ready_list(&self) -> ReadyList<'_> {
        let events = self.ready_lists.borrow_mut().pop().unwrap_or_default();
        ReadyList {
            nesting: self,
            events,
        }
    }

    /// Drops a removed handler, or defers the drop while a `poll` is on the
    /// stack (a callback of the node may be running, and walkers may still
    /// hold it).
    pub(crate) fn retire(&self, node: Rc<Node>) {
        if self.inside_poll() {
            self.deferred.borrow_mut().push(node);
        } else {
            self.recycle(node);
        }
    }

    /// Drops the callbacks of removed handlers; called when the outermost
    /// level ends its dispatch, and as it returns.
    #[inline]
    pub(crate) fn free_deferred(&self) {
        if !self.deferred.borrow().is_empty() {
            self.free_deferred_now();
        }
    }

    #[cold]
    fn free_deferred_now(&self) {
        let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
        for node in deferred {
            self.recycle(node);
        }
    }

    /// A node emptied by an earlier removal, to build a new one in.
    pub(crate) fn spare_node(&self) -> Option<Rc<Node>> {
        self.spare.borrow_mut().pop()
    }

    /// Drops a removed node's callbacks now and keeps the node for reuse,
    /// if nothing else holds it (a walker that still does drops it later).
    fn recycle(&self, mut node: Rc<Node>) {
        let Some(slot) = Rc::get_mut(&mut node) else {
            return;
        };
        // The callbacks' captures may reach the context (drop a handle,
        // remove a handler): no borrow is held while they go.
        drop(slot.take_callbacks());
        let mut spare = self.spare.borrow_mut();
        if spare.len() < SPARE_NODES {
            spare.push(node);
        }
    }
}

/// One level of `poll` (or `dispatch`) on the stack; the outermost frees
/// deferred deletions when it ends, also when a callback panics.
pub(crate) struct Level<'a> {
    nesting: &'a Nesting,
}

impl Drop for Level<'_> {
    fn drop(&mut self) {
        let depth = self.nesting.depth.get() - 1;
        self.nesting.depth.set(depth);
        if depth == 0 {
            self.nesting.free_deferred();
        }
    }
}

/// The ready list of one level, borrowed from the pool and given back
/// (emptied, capacity kept) when the level ends.
pub(crate) struct ReadyList<'a> {
    nesting: &'a Nesting,
    pub(crate) events: Vec<ReadyEvent>,
}

impl Drop for ReadyList<'_> {
    fn drop(&mut self) {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        self.nesting.ready_lists.borrow_mut().push(events);
    }
}
