//! `ThreadProbe`: lets one thread wait until another is blocked in the
//! kernel (asleep in a system call), the handshake that orders "the loop
//! is blocked" before what a test's other thread does next, without a
//! sleep that only makes it likely.
//!
//! ```
//! use std::sync::{Arc, Barrier};
//! use aio_core::testing::ThreadProbe;
//!
//! let me = ThreadProbe::current();
//! let barrier = Arc::new(Barrier::new(2));
//! let b = Arc::clone(&barrier);
//! let other = std::thread::spawn(move || {
//!     me.wait_until_blocked(); // the test thread is in `Barrier::wait`
//!     b.wait();
//! });
//! barrier.wait();
//! other.join().unwrap();
//! ```

use std::fs;

/// A thread of this process that another thread can watch (see the
/// [module](self)). Waiting has no limit of its own: a test arms a
/// [`Watchdog`](super::Watchdog) for the case where the thread never blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThreadProbe {
    tid: i32,
}

impl ThreadProbe {
    /// The calling thread.
    pub fn current() -> ThreadProbe {
        ThreadProbe {
            tid: rustix::thread::gettid().as_raw_nonzero().get(),
        }
    }

    /// Whether the thread is asleep in the kernel now (state `S` or `D` in
    /// `/proc`): blocked in a system call.
    ///
    /// # Panics
    ///
    /// If the thread has exited, or `/proc` cannot be read.
    pub fn is_blocked(&self) -> bool {
        let path = format!("/proc/self/task/{}/stat", self.tid);
        let stat = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        // The state follows the command name, which is in parentheses and
        // may hold any character, a `)` included.
        let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
        matches!(state.and_then(|s| s.chars().next()), Some('S' | 'D'))
    }

    /// Returns once the thread is blocked in the kernel.
    pub fn wait_until_blocked(&self) {
        while !self.is_blocked() {
            std::thread::yield_now();
        }
    }
}
