//! Bottom halves: callbacks scheduled to run once at the next iteration,
//! from the home thread or from any other.
//!
//! Each bottom half has a small atomic state word (scheduled, queued, idle,
//! deleted) shared with the threads that may schedule it, so scheduling is
//! idempotent until it runs and a cancelled or deleted one is skipped when
//! its queue entry comes up. Jobs scheduled since the last run wait in
//! `pending`; a run moves them to `running`, which nested `poll` calls share,
//! so a nested call finishes its parent's jobs before its own and every job
//! runs exactly once.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use slotmap::SlotMap;

use crate::AioContext;
use crate::context::Inner;
use crate::handler::Callback;
use crate::shared::{Gone, Shared};
use crate::sync::{AtomicU8, StateArc, fence};

slotmap::new_key_type! {
    /// Names a bottom half in its context.
    pub(crate) struct BhKey;
}

/// How soon an idle bottom half runs: the cap on a blocking wait while one
/// is scheduled.
pub(crate) const IDLE_BH_TIMEOUT_NS: u64 = 10_000_000;

const SCHEDULED: u8 = 1;
const QUEUED: u8 = 2;
const IDLE: u8 = 4;
const DELETED: u8 = 8;

/// The state word of one bottom half, shared with other threads.
#[derive(Debug, Default)]
pub(crate) struct BhState(AtomicU8);

/// The flags after a schedule of a bottom half whose flags are `flags`;
/// `None` if it is deleted.
fn scheduled(flags: u8, idle: bool) -> Option<u8> {
    if flags & DELETED != 0 {
        return None;
    }
    // Idle only if not already scheduled as a normal one.
    let stays_idle = idle && (flags & SCHEDULED == 0 || flags & IDLE != 0);
    let idle_bit = if stays_idle { IDLE } else { 0 };
    Some((flags & !IDLE) | SCHEDULED | QUEUED | idle_bit)
}

/// Whether, on the home thread, no other thread can reach `state`: it is
/// held by its [`BottomHalf`] and its entry only, no [`RemoteBh`]. A
/// `RemoteBh` is made on the home thread only (`BottomHalf::remote`) or
/// cloned from a live one, so none can appear until the home thread makes
/// one, and a read and a write of the word need no atomic read-modify-
/// write: two fewer locked instructions per run of a bottom half that no
/// other thread schedules.
fn home_only(state: &StateArc<BhState>) -> bool {
    if StateArc::strong_count(state) > 2 {
        return false;
    }
    // Pairs with the release decrement of the last `RemoteBh` dropped on
    // another thread: what it did to the word is seen here.
    fence(Ordering::Acquire);
    true
}

impl BhState {
    /// Marks the bottom half scheduled. Returns `None` if it is deleted,
    /// else whether a queue entry must be pushed (none is queued yet).
    /// `state` must be used on the home thread (see [`home_only`]).
    fn schedule_home(state: &StateArc<BhState>, idle: bool) -> Option<bool> {
        if !home_only(state) {
            return state.schedule(idle);
        }
        let prev = state.0.load(Ordering::Relaxed);
        state.0.store(scheduled(prev, idle)?, Ordering::Relaxed);
        Some(prev & QUEUED == 0)
    }

    /// [`schedule_home`](BhState::schedule_home) from any thread.
    fn schedule(&self, idle: bool) -> Option<bool> {
        let prev = self
            .0
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |flags| {
                scheduled(flags, idle)
            })
            .ok()?;
        Some(prev & QUEUED == 0)
    }

    /// Clears the state as its queue entry comes up, on the home thread.
    /// Returns `Some(idle)` if the bottom half was scheduled (and not
    /// cancelled since).
    fn take(state: &StateArc<BhState>) -> Option<bool> {
        let cleared = !(SCHEDULED | QUEUED | IDLE);
        let prev = if home_only(state) {
            let prev = state.0.load(Ordering::Relaxed);
            state.0.store(prev & cleared, Ordering::Relaxed);
            prev
        } else {
            state.0.fetch_and(cleared, Ordering::AcqRel)
        };
        (prev & SCHEDULED != 0 && prev & DELETED == 0).then_some(prev & IDLE != 0)
    }

    /// Puts back what `take` cleared, for a job that could not run yet.
    fn restore(&self, idle: bool) {
        let idle_bit = if idle { IDLE } else { 0 };
        self.0
            .fetch_or(SCHEDULED | QUEUED | idle_bit, Ordering::AcqRel);
    }

    fn cancel(&self) {
        self.0.fetch_and(!(SCHEDULED | IDLE), Ordering::AcqRel);
    }

    fn delete(&self) {
        self.0.fetch_or(DELETED, Ordering::AcqRel);
    }

    fn flags(&self) -> u8 {
        self.0.load(Ordering::Acquire)
    }
}

struct BhEntry {
    state: StateArc<BhState>,
    callback: RefCell<Callback>,
}

/// Work sent from another thread, run on the home thread.
pub(crate) enum RemoteJob {
    /// A bottom half of the context, by key.
    Bh(BhKey),
    /// A closure that runs once.
    Once(Box<dyn FnOnce(&AioContext) + Send>),
}

/// One item of work for the bottom-half phase.
enum Job {
    Bh(BhKey),
    Once(Box<dyn FnOnce(&AioContext)>),
}

impl From<RemoteJob> for Job {
    fn from(job: RemoteJob) -> Job {
        match job {
            RemoteJob::Bh(key) => Job::Bh(key),
            RemoteJob::Once(f) => Job::Once(f),
        }
    }
}

/// The bottom halves of a context.
#[derive(Default)]
pub(crate) struct BottomHalves {
    entries: RefCell<SlotMap<BhKey, Rc<BhEntry>>>,
    /// Scheduled on the home thread since the last run.
    pending: RefCell<VecDeque<Job>>,
    /// Being run; shared by nested `poll` calls.
    running: RefCell<VecDeque<Job>>,
    /// Swapped with the remote queue so that taking it allocates nothing.
    remote_spare: RefCell<Vec<RemoteJob>>,
}

impl BottomHalves {
    /// Drops every bottom half and job without running them.
    pub(crate) fn clear(&self) {
        let entries = std::mem::take(&mut *self.entries.borrow_mut());
        for entry in entries.values() {
            entry.state.delete();
        }
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        let running = std::mem::take(&mut *self.running.borrow_mut());
        drop((entries, pending, running));
    }
}

/// A bottom half: a callback that runs once each time it is scheduled, in
/// the next iteration of its context. Dropping the handle deletes it; it
/// never runs afterwards.
///
/// The handle lives on the home thread; [`remote`](BottomHalf::remote) gives
/// a handle that other threads can schedule it with. Once the context is
/// dropped, the bottom half is deleted and scheduling it does nothing.
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// use aio_core::{AioContext, testing::SleepMonitor};
///
/// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
/// let runs = Rc::new(Cell::new(0));
/// let r = runs.clone();
/// let bh = ctx.bh(move |_ctx| r.set(r.get() + 1));
/// bh.schedule();
/// bh.schedule(); // idempotent until it runs
/// assert!(ctx.poll(false)?);
/// assert_eq!(runs.get(), 1);
/// bh.schedule();
/// bh.cancel();
/// assert!(!ctx.poll(false)?);
/// assert_eq!(runs.get(), 1);
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "dropping a bottom half deletes it"]
pub struct BottomHalf {
    ctx: Weak<Inner>,
    key: BhKey,
    state: StateArc<BhState>,
}

impl BottomHalf {
    /// Schedules the bottom half for the next iteration (the next blocking
    /// wait returns at once). Does nothing if it is already scheduled.
    pub fn schedule(&self) {
        self.schedule_on_home(false);
    }

    /// Schedules the bottom half to run within 10 ms, without making the
    /// next wait return early; running it does not count as progress.
    pub fn schedule_idle(&self) {
        self.schedule_on_home(true);
    }

    /// Unschedules the bottom half if it has not run yet.
    pub fn cancel(&self) {
        self.state.cancel();
    }

    /// Whether it is scheduled and has not run yet.
    pub fn is_scheduled(&self) -> bool {
        self.state.flags() & (SCHEDULED | DELETED) == SCHEDULED
    }

    /// A handle that other threads can schedule this bottom half with.
    pub fn remote(&self) -> RemoteBh {
        let shared = self.ctx.upgrade().map(|inner| Arc::clone(&inner.shared));
        RemoteBh {
            shared,
            key: self.key,
            state: StateArc::clone(&self.state),
        }
    }

    fn schedule_on_home(&self, idle: bool) {
        let Some(inner) = self.ctx.upgrade() else {
            return;
        };
        if BhState::schedule_home(&self.state, idle) == Some(true) {
            inner.bhs.pending.borrow_mut().push_back(Job::Bh(self.key));
        }
    }
}

impl Drop for BottomHalf {
    fn drop(&mut self) {
        self.state.delete();
        if let Some(inner) = self.ctx.upgrade() {
            let entry = inner.bhs.entries.borrow_mut().remove(self.key);
            // Dropped after the borrow ends: the callback's own drop may
            // drop other bottom halves.
            drop(entry);
        }
    }
}

impl fmt::Debug for BottomHalf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BottomHalf")
            .field("scheduled", &self.is_scheduled())
            .finish_non_exhaustive()
    }
}

/// A handle that schedules a [`BottomHalf`] from any thread
/// (`Send + Sync + Clone`).
#[derive(Clone)]
pub struct RemoteBh {
    /// `None` if the context was already gone when the handle was made.
    shared: Option<Arc<Shared<RemoteJob>>>,
    key: BhKey,
    state: StateArc<BhState>,
}

impl RemoteBh {
    /// Schedules the bottom half and wakes its context.
    ///
    /// # Errors
    ///
    /// [`Gone`] if the bottom half or its context has been dropped.
    pub fn schedule(&self) -> Result<(), Gone> {
        let shared = self.shared.as_ref().ok_or(Gone::Context)?;
        // A dropped context deletes its bottom halves: say which went first.
        if shared.is_closed() {
            return Err(Gone::Context);
        }
        match self.state.schedule(false) {
            None => Err(Gone::BottomHalf),
            Some(true) => shared.push(RemoteJob::Bh(self.key)),
            Some(false) if shared.is_closed() => Err(Gone::Context),
            Some(false) => {
                // Already queued, perhaps on the home thread's own list
                // while it blocks with this bottom half cancelled: wake it
                // so that it looks again.
                shared.notify();
                Ok(())
            }
        }
    }

    /// Unschedules the bottom half if it has not run yet.
    pub fn cancel(&self) {
        self.state.cancel();
    }
}

impl fmt::Debug for RemoteBh {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteBh").finish_non_exhaustive()
    }
}

impl AioContext {
    /// Creates a bottom half that runs `f` each time it is scheduled.
    pub fn bh(&self, f: impl FnMut(&AioContext) + 'static) -> BottomHalf {
        let state = StateArc::new(BhState::default());
        let entry = Rc::new(BhEntry {
            state: StateArc::clone(&state),
            callback: RefCell::new(Box::new(f)),
        });
        let key = self.inner.bhs.entries.borrow_mut().insert(entry);
        BottomHalf {
            ctx: Rc::downgrade(&self.inner),
            key,
            state,
        }
    }

    /// Runs `f` once, in the bottom-half phase of the next iteration.
    pub fn schedule_oneshot(&self, f: impl FnOnce(&AioContext) + 'static) {
        self.inner
            .bhs
            .pending
            .borrow_mut()
            .push_back(Job::Once(Box::new(f)));
    }

    /// The cap that scheduled bottom halves put on the next wait: zero for
    /// a normal one, 10 ms for idle ones only.
    pub(crate) fn bh_timeout(&self) -> Option<u64> {
        let bhs = &self.inner.bhs;
        if !bhs.running.borrow().is_empty() || self.inner.shared.has_jobs() {
            return Some(0);
        }
        let entries = bhs.entries.borrow();
        let mut idle = false;
        for job in bhs.pending.borrow().iter() {
            let flags = match job {
                Job::Once(_) => return Some(0),
                Job::Bh(key) => entries.get(*key).map_or(0, |e| e.state.flags()),
            };
            if flags & (SCHEDULED | DELETED) == SCHEDULED {
                if flags & IDLE == 0 {
                    return Some(0);
                }
                idle = true;
            }
        }
        idle.then_some(IDLE_BH_TIMEOUT_NS)
    }

    /// Runs every job scheduled before this call (and those a parent `poll`
    /// left unfinished). Returns whether a non-idle one ran.
    pub(crate) fn run_bottom_halves(&self) -> bool {
        let bhs = &self.inner.bhs;
        {
            // Most iterations have nothing scheduled: look before moving.
            let mut running = bhs.running.borrow_mut();
            let mut pending = bhs.pending.borrow_mut();
            if running.is_empty() {
                // The usual case: no parent `poll` left jobs unfinished.
                std::mem::swap(&mut *running, &mut *pending);
            } else if !pending.is_empty() {
                running.extend(pending.drain(..));
            }
            if self.inner.shared.has_jobs() {
                let mut spare = bhs.remote_spare.borrow_mut();
                self.inner.shared.take_jobs(&mut spare);
                running.extend(spare.drain(..).map(Job::from));
            }
        }
        let mut progress = false;
        loop {
            let job = bhs.running.borrow_mut().pop_front();
            match job {
                None => return progress,
                Some(Job::Once(f)) => {
                    f(self);
                    progress = true;
                }
                Some(Job::Bh(key)) => progress |= self.run_bh(key),
            }
        }
    }

    fn run_bh(&self, key: BhKey) -> bool {
        let entry = self.inner.bhs.entries.borrow().get(key).cloned();
        let Some(entry) = entry else {
            return false; // deleted
        };
        let Some(idle) = BhState::take(&entry.state) else {
            return false; // cancelled
        };
        let Ok(mut callback) = entry.callback.try_borrow_mut() else {
            // Running further up the stack (a nested poll from its own
            // callback): it runs again once that call has returned.
            entry.state.restore(idle);
            self.inner.bhs.pending.borrow_mut().push_back(Job::Bh(key));
            return false;
        };
        callback(self);
        !idle
    }
}
