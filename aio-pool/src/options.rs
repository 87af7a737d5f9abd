//! How a pool sizes itself.

use std::time::Duration;

/// The most workers a pool runs at once, unless told otherwise (QEMU's
/// `thread-pool-max`).
pub const DEFAULT_MAX_WORKERS: usize = 64;

/// How long a worker waits for a job before it leaves, unless told
/// otherwise (QEMU's 10 s).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a [`Pool`](crate::Pool) sizes itself.
///
/// ```
/// use std::time::Duration;
/// use aio_pool::PoolOptions;
///
/// let options = PoolOptions { max_workers: 4, ..PoolOptions::default() };
/// assert_eq!(options.idle_timeout, Duration::from_secs(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolOptions {
    /// The most workers at once; 0 is taken as 1. Jobs queued while all of
    /// them are busy wait for one to finish.
    pub max_workers: usize,
    /// How long an idle worker waits for a job before it leaves.
    pub idle_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> PoolOptions {
        PoolOptions {
            max_workers: DEFAULT_MAX_WORKERS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}
