//! The deadline rule of [`FdMonitor::wait`](crate::FdMonitor::wait), once,
//! for every monitor: a timeout is honoured to the nanosecond where the
//! kernel allows it, a system call that a signal interrupts (`EINTR`) is
//! made again with the time that remains, and a timeout too long to end at
//! a point in time that [`Instant`] can hold is as good as forever.
//!
//! ```
//! use std::{io, time::Duration};
//! use aio_core::deadline;
//!
//! // The second attempt is interrupted, the third finds something.
//! let mut attempts = Vec::new();
//! let found = deadline::retry(Some(Duration::from_secs(60)), |left| {
//!     attempts.push(left);
//!     match attempts.len() {
//!         1 => Ok(None), // woken with nothing for the caller
//!         2 => Err(io::Error::from_raw_os_error(libc::EINTR)),
//!         _ => Ok(Some("ready")),
//!     }
//! })?;
//! assert_eq!(found, Some("ready"));
//! assert!(attempts.windows(2).all(|w| w[1] <= w[0]), "each with what remains");
//! # Ok::<(), io::Error>(())
//! ```

use std::io;
use std::time::{Duration, Instant};

/// Calls `attempt` with the time that remains of `timeout` (`None`:
/// forever) until it returns `Ok(Some(_))` (that, returned), an error other
/// than [`Interrupted`](io::ErrorKind::Interrupted) (returned), or the
/// deadline passes (`Ok(None)`).
///
/// `attempt` answers `Ok(None)`, or `EINTR`, for a wake-up that brought the
/// caller nothing: a signal, or readiness that was gone by the time it was
/// collected; it is then called again with what remains. A zero timeout
/// gets one attempt.
///
/// # Errors
///
/// The first error of `attempt` that is not `Interrupted`.
pub fn retry<T>(
    timeout: Option<Duration>,
    mut attempt: impl FnMut(Option<Duration>) -> io::Result<Option<T>>,
) -> io::Result<Option<T>> {
    // The clock is read only when a retry needs what remains: a zero
    // timeout (a loop's non-blocking iterations) and forever read it never,
    // a finite timeout once before its first attempt.
    if timeout == Some(Duration::ZERO) {
        return match attempt(timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            result => result,
        };
    }
    let deadline = Deadline::after(timeout);
    // A timeout past what `Instant` can hold is forever from the start.
    let mut left = deadline.0.and(timeout);
    loop {
        match attempt(left) {
            Ok(Some(found)) => return Ok(Some(found)),
            Err(e) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
            _ => {}
        }
        left = deadline.remaining();
        if left.is_some_and(|left| left.is_zero()) {
            return Ok(None);
        }
    }
}

/// When a wait must end: `None` for never.
#[derive(Clone, Copy, Debug)]
struct Deadline(Option<Instant>);

impl Deadline {
    fn after(timeout: Option<Duration>) -> Deadline {
        // A deadline past what `Instant` can hold is as good as forever.
        Deadline(timeout.and_then(|t| Instant::now().checked_add(t)))
    }

    fn remaining(self) -> Option<Duration> {
        self.0
            .map(|at| at.saturating_duration_since(Instant::now()))
    }
}

/// `struct __kernel_timespec`: what `epoll_pwait2` and `io_uring_enter`
/// read, with 64-bit fields on every architecture (unlike
/// [`libc::timespec`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelTimespec {
    /// Whole seconds.
    pub tv_sec: i64,
    /// Nanoseconds, below a second.
    pub tv_nsec: i64,
}

impl From<Duration> for KernelTimespec {
    /// Seconds beyond what the kernel can hold are clamped (to about 292
    /// billion years); nanoseconds are kept.
    fn from(d: Duration) -> KernelTimespec {
        KernelTimespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        }
    }
}

/// `d` as the C library's `timespec` (what `ppoll` reads), seconds clamped
/// to what `time_t` holds, nanoseconds kept.
pub fn timespec(d: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: d.subsec_nanos() as libc::c_long,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eintr<T>() -> io::Result<Option<T>> {
        Err(io::Error::from_raw_os_error(libc::EINTR))
    }

    #[test]
    fn interruptions_are_retried_with_the_time_that_remains() {
        let mut lefts = Vec::new();
        let found = retry(Some(Duration::from_secs(3600)), |left| {
            lefts.push(left.unwrap());
            if lefts.len() < 3 {
                eintr()
            } else {
                Ok(Some(7))
            }
        });
        assert_eq!(found.unwrap(), Some(7));
        assert!(lefts[0] <= Duration::from_secs(3600));
        assert!(lefts.windows(2).all(|w| w[1] <= w[0]), "{lefts:?}");
    }

    #[test]
    fn other_errors_end_the_wait() {
        let mut calls = 0;
        let err = retry::<()>(None, |_| {
            calls += 1;
            Err(io::Error::from_raw_os_error(libc::EBADF))
        })
        .unwrap_err();
        assert_eq!((err.raw_os_error(), calls), (Some(libc::EBADF), 1));
    }

    #[test]
    fn a_zero_timeout_gets_one_attempt() {
        let mut calls = 0;
        let found = retry::<()>(Some(Duration::ZERO), |left| {
            assert_eq!(left, Some(Duration::ZERO));
            calls += 1;
            eintr()
        });
        assert_eq!((found.unwrap(), calls), (None, 1));
    }

    #[test]
    fn a_passed_deadline_ends_the_retries() {
        let found = retry::<()>(Some(Duration::from_micros(50)), |left| {
            if let Some(left) = left {
                std::thread::sleep(left); // the attempt takes its whole time
            }
            Ok(None)
        });
        assert_eq!(found.unwrap(), None);
    }

    #[test]
    fn forever_and_past_instant_are_no_deadline() {
        for timeout in [None, Some(Duration::MAX)] {
            let mut lefts = Vec::new();
            let found = retry(timeout, |left| {
                lefts.push(left);
                if lefts.len() < 2 {
                    eintr()
                } else {
                    Ok(Some(()))
                }
            });
            assert_eq!(found.unwrap(), Some(()));
            assert_eq!(lefts, [None, None], "{timeout:?}");
        }
    }

    #[test]
    fn timespecs_keep_nanoseconds_and_clamp_seconds() {
        let d = Duration::from_nanos(1_000_000_123);
        assert_eq!(
            KernelTimespec::from(d),
            KernelTimespec {
                tv_sec: 1,
                tv_nsec: 123
            }
        );
        assert_eq!((timespec(d).tv_sec, timespec(d).tv_nsec), (1, 123));
        assert_eq!(KernelTimespec::from(Duration::MAX).tv_sec, i64::MAX);
        assert_eq!(timespec(Duration::MAX).tv_sec, libc::time_t::MAX);
    }
}
