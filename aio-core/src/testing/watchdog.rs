//! A watchdog on a thread of its own, for tests whose loop could hang in a
//! blocking wait that no timer of the context can end (a manual clock does
//! not move while the loop sleeps).

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Aborts the test process, saying what it waited for, if it is not dropped
/// within its limit. A panic would not do: the hang is on another thread,
/// which a panic here would not stop.
///
/// ```
/// use std::time::Duration;
/// use aio_core::testing::Watchdog;
///
/// let dog = Watchdog::arm("the answer", Duration::from_secs(30));
/// let answer = 6 * 7;
/// drop(dog); // in time: nothing happens
/// assert_eq!(answer, 42);
/// ```
#[derive(Debug)]
#[must_use = "a watchdog is disarmed when dropped"]
pub struct Watchdog {
    disarm: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    /// Starts watching: `what` names what the test waits for.
    pub fn arm(what: impl Into<String>, limit: Duration) -> Watchdog {
        let what = what.into();
        let (disarm, disarmed) = mpsc::channel::<()>();
        let thread = thread::spawn(move || {
            if let Err(RecvTimeoutError::Timeout) = disarmed.recv_timeout(limit) {
                eprintln!("watchdog: still waiting for {what} after {limit:?}; aborting");
                std::process::abort();
            }
        });
        Watchdog {
            disarm: Some(disarm),
            thread: Some(thread),
        }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
