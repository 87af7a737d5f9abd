//! Timers: callbacks that run once their deadline on the context's clock has
//! passed, kept in a binary heap that knows each timer's position, so that
//! re-arming or cancelling is O(log n) and allocates nothing.

use std::cell::RefCell;
use std::fmt;
use std::rc::{Rc, Weak};
use std::time::Duration;

use slotmap::SlotMap;

use crate::AioContext;
use crate::clock::saturating_ns;
use crate::context::Inner;
use crate::handler::Callback;

slotmap::new_key_type! {
    /// Names a timer in its context.
    pub(crate) struct TimerKey;
}

struct TimerEntry {
    callback: Rc<RefCell<Callback>>,
    /// Index in the heap while armed.
    pos: Option<usize>,
}

#[derive(Clone, Copy)]
struct Armed {
    deadline: u64,
    /// Arming order: breaks ties (first armed runs first) and tells which
    /// timers were armed during a run of expired timers.
    seq: u64,
    key: TimerKey,
}

impl Armed {
    fn before(&self, other: &Armed) -> bool {
        (self.deadline, self.seq) < (other.deadline, other.seq)
    }
}

/// The timers of a context.
#[derive(Default)]
pub(crate) struct Timers {
    entries: SlotMap<TimerKey, TimerEntry>,
    heap: Vec<Armed>,
    next_seq: u64,
}

impl Timers {
    fn insert(&mut self, callback: Callback) -> TimerKey {
        self.entries.insert(TimerEntry {
            callback: Rc::new(RefCell::new(callback)),
            pos: None,
        })
    }

    fn remove(&mut self, key: TimerKey) -> Option<Rc<RefCell<Callback>>> {
        self.disarm(key);
        self.entries.remove(key).map(|entry| entry.callback)
    }

    fn arm(&mut self, key: TimerKey, deadline: u64) {
        if !self.entries.contains_key(key) {
            return;
        }
        self.disarm(key);
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Armed { deadline, seq, key });
        self.sift_up(self.heap.len() - 1);
    }

    fn disarm(&mut self, key: TimerKey) {
        if let Some(pos) = self.entries.get_mut(key).and_then(|e| e.pos.take()) {
            self.remove_at(pos);
        }
    }

    fn deadline(&self, key: TimerKey) -> Option<u64> {
        let pos = self.entries.get(key)?.pos?;
        Some(self.heap[pos].deadline)
    }

    /// The earliest deadline.
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        self.heap.first().map(|armed| armed.deadline)
    }

    /// Disarms and returns the earliest timer if its deadline is at or
    /// before `now` and it was armed before `armed_before`.
    fn pop_expired(
        &mut self,
        now: u64,
        armed_before: u64,
    ) -> Option<(TimerKey, u64, Rc<RefCell<Callback>>)> {
        let head = *self.heap.first()?;
        if head.deadline > now || head.seq >= armed_before {
            return None;
        }
        self.disarm(head.key);
        let callback = Rc::clone(&self.entries[head.key].callback);
        Some((head.key, head.deadline, callback))
    }

    fn remove_at(&mut self, pos: usize) {
        self.heap.swap_remove(pos);
        if pos < self.heap.len() {
            self.sift_down(pos);
            self.sift_up(pos);
        }
    }

    fn sift_up(&mut self, mut pos: usize) {
        while pos > 0 {
            let parent = (pos - 1) / 2;
            if !self.heap[pos].before(&self.heap[parent]) {
                break;
            }
            self.heap.swap(pos, parent);
            self.place(pos);
            pos = parent;
        }
        self.place(pos);
    }

    fn sift_down(&mut self, mut pos: usize) {
        loop {
            let left = 2 * pos + 1;
            if left >= self.heap.len() {
                break;
            }
            let right = left + 1;
            let child = if right < self.heap.len() && self.heap[right].before(&self.heap[left]) {
                right
            } else {
                left
            };
            if !self.heap[child].before(&self.heap[pos]) {
                break;
            }
            self.heap.swap(pos, child);
            self.place(pos);
            pos = child;
        }
        self.place(pos);
    }

    /// Records in the entry where its heap item now is.
    fn place(&mut self, pos: usize) {
        let key = self.heap[pos].key;
        self.entries[key].pos = Some(pos);
    }
}

/// A timer: runs its callback once each time it is armed and its deadline
/// passes. Dropping the handle deletes it.
///
/// Deadlines are nanoseconds on the context's clock ([`AioContext::now_ns`]);
/// the loop sleeps no longer than until the earliest one, with nanosecond
/// resolution where the monitor allows it. A callback may re-arm its own
/// timer. Once the context is dropped, arming the timer does nothing.
///
/// ```
/// use std::{cell::Cell, rc::Rc, time::Duration};
/// use aio_core::{ContextBuilder, ManualClock, testing::SleepMonitor};
///
/// let clock = ManualClock::new();
/// let ctx = ContextBuilder::new(Box::new(SleepMonitor::new())).clock(clock.clone()).build()?;
/// let fired = Rc::new(Cell::new(false));
/// let f = fired.clone();
/// let timer = ctx.timer(move |_ctx| f.set(true));
/// timer.arm_in(Duration::from_micros(200));
/// ctx.poll(false)?;
/// assert!(!fired.get());
/// clock.advance(Duration::from_micros(200));
/// ctx.poll(false)?;
/// assert!(fired.get());
/// # Ok::<(), std::io::Error>(())
/// ```
#[must_use = "dropping a timer deletes it"]
pub struct Timer {
    ctx: Weak<Inner>,
    key: TimerKey,
}

impl Timer {
    /// Arms the timer for `deadline`, replacing any earlier deadline. A
    /// deadline in the past fires in the next iteration. On a
    /// [`ManualClock`](crate::ManualClock) the deadline is taken as so far
    /// from the manual time as it is from the real time now.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use aio_core::{AioContext, testing::SleepMonitor};
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let timer = ctx.timer(|_| {});
    /// timer.arm_at(Instant::now() + Duration::from_millis(1));
    /// assert!(timer.is_armed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn arm_at(&self, deadline: std::time::Instant) {
        if let Some(inner) = self.ctx.upgrade() {
            let deadline_ns = inner.clock.ns_at(deadline);
            inner.timers.borrow_mut().arm(self.key, deadline_ns);
        }
    }

    /// Arms the timer for `deadline_ns` on the context's clock (in
    /// nanoseconds since its origin, as [`AioContext::now_ns`] reads it),
    /// replacing any earlier deadline. A deadline in the past fires in the
    /// next iteration.
    pub fn arm_at_ns(&self, deadline_ns: u64) {
        if let Some(inner) = self.ctx.upgrade() {
            inner.timers.borrow_mut().arm(self.key, deadline_ns);
        }
    }

    /// Arms the timer for `delay` from now.
    pub fn arm_in(&self, delay: Duration) {
        if let Some(inner) = self.ctx.upgrade() {
            let deadline = inner.clock.now_ns().saturating_add(saturating_ns(delay));
            inner.timers.borrow_mut().arm(self.key, deadline);
        }
    }

    /// Disarms the timer.
    pub fn cancel(&self) {
        if let Some(inner) = self.ctx.upgrade() {
            inner.timers.borrow_mut().disarm(self.key);
        }
    }

    /// The deadline it is armed for, if it is.
    pub fn deadline_ns(&self) -> Option<u64> {
        self.ctx.upgrade()?.timers.borrow().deadline(self.key)
    }

    /// Whether it is armed.
    pub fn is_armed(&self) -> bool {
        self.deadline_ns().is_some()
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(inner) = self.ctx.upgrade() {
            let callback = inner.timers.borrow_mut().remove(self.key);
            drop(callback);
        }
    }
}

impl fmt::Debug for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Timer")
            .field("deadline_ns", &self.deadline_ns())
            .finish_non_exhaustive()
    }
}

impl AioContext {
    /// Creates a timer that runs `f` each time its deadline passes; it is
    /// not armed yet.
    pub fn timer(&self, f: impl FnMut(&AioContext) + 'static) -> Timer {
        let key = self.inner.timers.borrow_mut().insert(Box::new(f));
        Timer {
            ctx: Rc::downgrade(&self.inner),
            key,
        }
    }

    /// Runs the timers whose deadline has passed, reading the clock once.
    /// A timer re-armed by a callback for a time that has passed already
    /// runs in the next iteration, so a run always ends.
    pub(crate) fn run_timers(&self) -> bool {
        if self.inner.timers.borrow().next_deadline().is_none() {
            return false;
        }
        let now = self.inner.clock.now_ns();
        let armed_before = self.inner.timers.borrow().next_seq;
        let mut progress = false;
        loop {
            let expired = self
                .inner
                .timers
                .borrow_mut()
                .pop_expired(now, armed_before);
            let Some((key, deadline, callback)) = expired else {
                return progress;
            };
            match callback.try_borrow_mut() {
                Ok(mut f) => {
                    f(self);
                    progress = true;
                }
                // Running further up the stack: a nested poll from its own
                // callback. Keep it armed for when that call returns.
                Err(_) => self.inner.timers.borrow_mut().arm(key, deadline),
            }
        }
    }
}
