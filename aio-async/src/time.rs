//! Timers: `sleep`, `sleep_until`, `timeout`, `interval`, on the context's
//! nanosecond timers (no rounding to milliseconds).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aio_core::Timer;

use crate::current;

/// Waits for `duration`, counted from the first poll, on the context's
/// clock.
///
/// # Panics
///
/// If polled outside a runtime (as [`spawn_local`](crate::spawn_local)).
pub fn sleep(duration: Duration) -> Sleep {
    Sleep::new(Deadline::In(duration))
}

/// Waits until `deadline`.
///
/// # Panics
///
/// If polled outside a runtime (as [`spawn_local`](crate::spawn_local)).
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(Deadline::At(deadline))
}

/// Waits until `deadline_ns` on the context's clock
/// ([`AioContext::now_ns`](aio_core::AioContext::now_ns)): with a manual
/// clock, the deadline is in the clock's time.
///
/// # Panics
///
/// If polled outside a runtime (as [`spawn_local`](crate::spawn_local)).
pub fn sleep_until_ns(deadline_ns: u64) -> Sleep {
    Sleep::new(Deadline::AtNs(deadline_ns))
}

#[derive(Debug, Clone, Copy)]
enum Deadline {
    In(Duration),
    At(Instant),
    AtNs(u64),
}

/// What a timer's callback and its future share.
#[derive(Default)]
struct Shared {
    fired: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

/// The context's timer behind a future, made at the first poll.
struct Armed {
    timer: Timer,
    shared: Rc<Shared>,
}

impl Armed {
    fn new() -> Armed {
        let ctx = current::expect_executor("a timer");
        let shared = Rc::new(Shared::default());
        let s = Rc::clone(&shared);
        let timer = ctx.context().timer(move |_| {
            s.fired.set(true);
            let waker = s.waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        });
        Armed { timer, shared }
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.shared.fired.get() {
            return Poll::Ready(());
        }
        let mut waker = self.shared.waker.borrow_mut();
        match &mut *waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            slot => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn arm_at_ns(&self, deadline_ns: u64) {
        self.shared.fired.set(false);
        self.timer.arm_at_ns(deadline_ns);
    }
}

/// The future of [`sleep`], [`sleep_until`] and [`sleep_until_ns`].
/// Dropping it cancels its timer.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Deadline,
    armed: Option<Armed>,
}

impl Sleep {
    fn new(deadline: Deadline) -> Sleep {
        Sleep {
            deadline,
            armed: None,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        let armed = this.armed.get_or_insert_with(|| {
            let armed = Armed::new();
            match this.deadline {
                Deadline::In(d) => armed.timer.arm_in(d),
                Deadline::At(at) => armed.timer.arm_at(at),
                Deadline::AtNs(ns) => armed.timer.arm_at_ns(ns),
            }
            armed
        });
        armed.poll(cx)
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .finish_non_exhaustive()
    }
}

/// Runs `future` for at most `duration`.
///
/// # Errors
///
/// [`Elapsed`] if the time ran out first; the future is dropped then.
pub async fn timeout<F: Future>(duration: Duration, future: F) -> Result<F::Output, Elapsed> {
    futures_lite::future::or(async { Ok(future.await) }, async {
        sleep(duration).await;
        Err(Elapsed(duration))
    })
    .await
}

/// The error of [`timeout`]: the time ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed(Duration);

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "timed out after {:?}", self.0)
    }
}

impl std::error::Error for Elapsed {}

impl From<Elapsed> for io::Error {
    fn from(e: Elapsed) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, e)
    }
}

/// Ticks every `period`: the first tick is at once, then one per period,
/// on one reused timer. A tick that comes late (the task was busy) does not
/// shift the schedule; ticks missed altogether are skipped, not bunched.
///
/// # Panics
///
/// If `period` is zero, or if ticked outside a runtime.
pub fn interval(period: Duration) -> Interval {
    assert!(
        !period.is_zero(),
        "aio-async: an interval needs a period above zero"
    );
    Interval {
        period_ns: u64::try_from(period.as_nanos()).unwrap_or(u64::MAX),
        next_ns: None,
        armed: None,
    }
}

/// The ticks of [`interval`].
pub struct Interval {
    period_ns: u64,
    /// The next tick's deadline, from the first tick on.
    next_ns: Option<u64>,
    armed: Option<Armed>,
}

impl Interval {
    /// Waits for the next tick; gives its deadline on the context's clock,
    /// in nanoseconds.
    pub async fn tick(&mut self) -> u64 {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// The poll form of [`tick`](Interval::tick).
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<u64> {
        let armed = self.armed.get_or_insert_with(Armed::new);
        let Some(deadline) = self.next_ns else {
            let now = current::expect_executor("an interval").context().now_ns();
            self.next_ns = Some(now.saturating_add(self.period_ns));
            armed.arm_at_ns(now.saturating_add(self.period_ns));
            return Poll::Ready(now);
        };
        if armed.poll(cx).is_pending() {
            return Poll::Pending;
        }
        let now = armed.timer_now();
        let mut next = deadline.saturating_add(self.period_ns);
        if next <= now {
            let behind = (now - deadline) / self.period_ns;
            next = deadline.saturating_add((behind + 1).saturating_mul(self.period_ns));
        }
        self.next_ns = Some(next);
        armed.arm_at_ns(next);
        Poll::Ready(deadline)
    }
}

impl Armed {
    fn timer_now(&self) -> u64 {
        current::expect_executor("an interval").context().now_ns()
    }
}

impl fmt::Debug for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Interval")
            .field("period_ns", &self.period_ns)
            .field("next_ns", &self.next_ns)
            .finish_non_exhaustive()
    }
}
