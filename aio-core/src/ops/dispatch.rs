//! Completions: collected from both engines after the wait, fed to their
//! operations (which may send the rest of a short transfer), and the
//! finished ones' callbacks run in the dispatch phase; and what becomes of
//! operations in flight when the monitor changes or the context goes.

use std::time::Duration;

use super::request::OpCompletion;
use super::table::{Route, Step};
use crate::AioContext;
use crate::pass::Pass;

/// How long a context being dropped waits for the kernel to finish (or
/// cancel) its operations before it gives up and leaks their buffers.
const DRAIN_LIMIT: Duration = Duration::from_secs(10);

impl AioContext {
    /// Runs the callbacks of the operations that completed, and adapts
    /// the operations' poll time if some did. Returns whether one ran.
    pub(crate) fn dispatch_ops(&self, pass: &Pass) -> bool {
        let inner = &*self.inner;
        let in_flight = inner.ops.table.borrow().in_flight();
        if in_flight == 0 {
            return false;
        }
        let mut done = std::mem::take(&mut *inner.ops.scratch.borrow_mut());
        // No more completions can come than operations are in flight: a
        // burst larger than any before takes no allocation.
        done.reserve(in_flight);
        self.collect_completions(&mut done);
        if !done.is_empty() {
            inner.window.adapt_ops(pass.block_ns());
        }
        let mut progress = false;
        for completion in done.drain(..) {
            progress |= self.complete(completion);
        }
        *inner.ops.scratch.borrow_mut() = done;
        progress
    }

    /// Whether operations are in flight (the window waits for them).
    pub(crate) fn has_ops_in_flight(&self) -> bool {
        self.inner.ops.table.borrow().in_flight() != 0
    }

    /// Whether a completion waits to be dispatched: the window ends for
    /// one, as for a `poll` callback that says yes. (A completion still in
    /// the monitor's ring shows in its `pending`; one its wait reaped
    /// already, in its engine.)
    pub(crate) fn ops_have_completions(&self) -> bool {
        let ops = &self.inner.ops;
        if ops.table.borrow().in_flight() == 0 {
            return false;
        }
        !ops.refused.borrow().is_empty()
            || ops
                .fallback
                .borrow()
                .as_ref()
                .is_some_and(|e| e.has_completions())
            || self
                .inner
                .monitor
                .borrow_mut()
                .ops()
                .is_some_and(|e| e.has_completions())
    }

    fn collect_completions(&self, into: &mut Vec<OpCompletion>) {
        let inner = &*self.inner;
        if let Some(engine) = inner.monitor.borrow_mut().ops() {
            engine.take_completions(into);
        }
        if let Some(engine) = inner.ops.fallback.borrow_mut().as_mut() {
            engine.take_completions(into);
        }
        into.append(&mut inner.ops.refused.borrow_mut());
    }

    /// Feeds one completion to its operation; runs its callback if it is
    /// done, else sends what remains.
    fn complete(&self, completion: OpCompletion) -> bool {
        let step = self.inner.ops.table.borrow_mut().step(completion);
        match step {
            None => false, // a slot reused since: not this owner's
            Some(Step::Again) => {
                self.send_request(completion.id);
                false
            }
            Some(Step::Done) => {
                let op = self.inner.ops.table.borrow_mut().remove(completion.id);
                let Some(mut op) = op else {
                    return false;
                };
                op.finish(self);
                self.inner.ops.table.borrow_mut().recycle(op);
                true
            }
        }
    }

    /// Whether operations are in flight on the monitor's engine, which a
    /// move to another monitor would cut off.
    pub(crate) fn monitor_ops_in_flight(&self) -> bool {
        self.inner
            .ops
            .table
            .borrow()
            .ids(Route::Monitor)
            .next()
            .is_some()
    }

    /// The monitor failed for good: its engine can no longer say when the
    /// kernel is done with the buffers of its operations, so they are
    /// leaked rather than freed, and their callbacks never run.
    pub(crate) fn abandon_monitor_ops(&self) {
        self.inner.ops.table.borrow_mut().leak(Route::Monitor);
    }

    /// As the context is dropped: cancels every operation, waits for the
    /// monitor's to complete (a buffer is freed only after its completion),
    /// then drops the fallback engine, which finishes or cancels its own
    /// and leaves no worker behind. No callback runs.
    pub(crate) fn drain_ops(&self) {
        let inner = &*self.inner;
        if inner.ops.table.borrow().in_flight() == 0 {
            drop(inner.ops.fallback.borrow_mut().take());
            return;
        }
        let ids: Vec<_> = inner.ops.table.borrow().ids(Route::Monitor).collect();
        if let Some(engine) = inner.monitor.borrow_mut().ops() {
            for id in ids {
                engine.cancel(id);
            }
        }
        let start = std::time::Instant::now();
        let mut events = Vec::new();
        let mut done = Vec::new();
        while self.monitor_ops_in_flight() && start.elapsed() < DRAIN_LIMIT {
            let waited = inner
                .monitor
                .borrow_mut()
                .wait(&mut events, Some(Duration::from_millis(1)));
            if waited.is_err() {
                break;
            }
            events.clear();
            if let Some(engine) = inner.monitor.borrow_mut().ops() {
                engine.take_completions(&mut done);
            }
            for completion in done.drain(..) {
                Self::discard(inner, completion, Route::Monitor);
            }
        }
        inner.ops.table.borrow_mut().leak(Route::Monitor);
        // The fallback stops (its workers joined), then gives up what
        // completed meanwhile.
        let mut fallback = inner.ops.fallback.borrow_mut().take();
        if let Some(engine) = fallback.as_mut() {
            engine.close();
            engine.take_completions(&mut done);
        }
        for completion in done.drain(..) {
            Self::discard(inner, completion, Route::Fallback);
        }
        drop(fallback);
    }

    /// Drops the operation that `completion` finishes (if it went to
    /// `route`) without its callback, after feeding it the result, so that
    /// what the result carries (an accepted socket) is released with it.
    fn discard(inner: &crate::context::Inner, completion: OpCompletion, route: Route) {
        let mut table = inner.ops.table.borrow_mut();
        let op = (table.route(completion.id) == Some(route)).then(|| {
            let _ = table.step(completion);
            table.remove(completion.id)
        });
        drop(table);
        drop(op); // the buffer and callback, outside the borrow
    }
}
