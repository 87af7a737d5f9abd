//! The context's clock: monotonic nanoseconds, or a manual clock for tests.
//!
//! Timers, adaptive polling and the busy-poll window all read the same clock,
//! so a test that installs a [`ManualClock`] controls every decision the loop
//! makes about time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The source of time of an [`AioContext`](crate::AioContext).
///
/// Time is counted in nanoseconds from an origin private to the clock.
#[derive(Clone, Debug)]
pub struct Clock(ClockKind);

#[derive(Clone, Debug)]
enum ClockKind {
    Monotonic(Instant),
    Manual(ManualClock),
}

impl Clock {
    /// The system's monotonic clock (`CLOCK_MONOTONIC`), with its origin at
    /// the time of this call.
    pub fn monotonic() -> Clock {
        Clock(ClockKind::Monotonic(Instant::now()))
    }

    /// The current time in nanoseconds since the clock's origin.
    #[inline]
    pub fn now_ns(&self) -> u64 {
        match &self.0 {
            ClockKind::Monotonic(origin) => saturating_ns(origin.elapsed()),
            ClockKind::Manual(manual) => manual.read(),
        }
    }

    /// The reading of this clock at `instant`: on the monotonic clock, the
    /// time since its origin (0 before it); on a manual clock, the manual
    /// time now moved by as much as `instant` is from the real time now.
    pub(crate) fn ns_at(&self, instant: Instant) -> u64 {
        match &self.0 {
            ClockKind::Monotonic(origin) => {
                saturating_ns(instant.saturating_duration_since(*origin))
            }
            ClockKind::Manual(manual) => {
                let (now, real) = (manual.now_ns(), Instant::now());
                match instant.checked_duration_since(real) {
                    Some(ahead) => now.saturating_add(saturating_ns(ahead)),
                    None => now.saturating_sub(saturating_ns(real - instant)),
                }
            }
        }
    }
}

impl Default for Clock {
    fn default() -> Clock {
        Clock::monotonic()
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Clock {
        Clock(ClockKind::Manual(manual))
    }
}

/// A clock that moves only when the test moves it: deterministic timers and
/// poll-time adaptation.
///
/// It is `Send + Sync + Clone`; clones share one time. With
/// [`auto_advance`](ManualClock::auto_advance), every reading moves the clock
/// forward by a fixed step, so that a busy-poll window ends after a known
/// number of rounds.
///
/// ```
/// use std::time::Duration;
/// use aio_core::ManualClock;
///
/// let clock = ManualClock::new();
/// clock.advance(Duration::from_micros(5));
/// assert_eq!(clock.now_ns(), 5_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock(Arc<ManualState>);

#[derive(Debug, Default)]
struct ManualState {
    now: AtomicU64,
    step: AtomicU64,
}

impl ManualClock {
    /// A clock at time zero that does not move by itself.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// The current time in nanoseconds, without the automatic step.
    pub fn now_ns(&self) -> u64 {
        self.0.now.load(Ordering::SeqCst)
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        self.0.now.fetch_add(saturating_ns(by), Ordering::SeqCst);
    }

    /// Moves the clock to `ns`, if that is later than now.
    pub fn advance_to(&self, ns: u64) {
        self.0.now.fetch_max(ns, Ordering::SeqCst);
    }

    /// Makes every reading by the context advance the clock by `step`
    /// (zero turns it off).
    pub fn auto_advance(&self, step: Duration) {
        self.0.step.store(saturating_ns(step), Ordering::SeqCst);
    }

    fn read(&self) -> u64 {
        let step = self.0.step.load(Ordering::Relaxed);
        if step == 0 {
            self.now_ns()
        } else {
            self.0.now.fetch_add(step, Ordering::SeqCst) + step
        }
    }
}

/// A duration in nanoseconds, saturating at `u64::MAX` (584 years).
pub(crate) fn saturating_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
