//! Running the loop until it is told to stop: `run`, `run_until`, `stop`.
//!
//! A hand-written `while !done { ctx.poll(true)?; }` hangs when `done` is
//! set from another thread, because nothing wakes the blocked wait; a stop
//! here sets its flag first and then notifies, so the woken loop sees it.

use std::io;

use crate::AioContext;

impl AioContext {
    /// Runs iterations, blocking when there is nothing to do, until
    /// [`stop`](AioContext::stop) or [`Remote::stop`](crate::Remote::stop)
    /// is called (from a callback or from another thread). A stop asked for
    /// while the context was not running makes the next `run` return at
    /// once. Called from a
    /// callback, it runs nested iterations, and a stop ends the innermost
    /// `run`.
    ///
    /// # Errors
    ///
    /// The first error of an iteration ([`poll`](AioContext::poll)).
    ///
    /// ```
    /// use std::thread;
    /// use aio_core::{AioContext, testing::SleepMonitor};
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let remote = ctx.remote();
    /// let worker = thread::spawn(move || remote.stop());
    /// ctx.run()?; // returns once the worker's stop arrives
    /// worker.join().unwrap();
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run(&self) -> io::Result<()> {
        self.run_until(|| false)
    }

    /// Runs iterations, blocking when there is nothing to do, until `done`
    /// returns true or a stop is asked for. `done` is checked before each
    /// iteration; a callback that makes it true ends the run after its
    /// iteration. A condition that another thread changes does not wake the
    /// loop: that thread should call [`Remote::notify`](crate::Remote::notify)
    /// after the change, or [`Remote::stop`](crate::Remote::stop).
    ///
    /// # Errors
    ///
    /// The first error of an iteration ([`poll`](AioContext::poll)).
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc, time::Duration};
    /// use aio_core::{AioContext, testing::SleepMonitor};
    ///
    /// let ctx = AioContext::with_monitor(Box::new(SleepMonitor::new()))?;
    /// let fired = Rc::new(Cell::new(false));
    /// let f = fired.clone();
    /// let timer = ctx.timer(move |_| f.set(true));
    /// timer.arm_in(Duration::from_micros(50));
    /// ctx.run_until(|| fired.get())?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn run_until(&self, mut done: impl FnMut() -> bool) -> io::Result<()> {
        let shared = &self.inner.shared;
        while !done() && !shared.take_stop() {
            self.poll(true)?;
        }
        Ok(())
    }

    /// Makes [`run`](AioContext::run) return after the iteration in
    /// progress; the same as [`Remote::stop`](crate::Remote::stop).
    pub fn stop(&self) {
        self.inner.shared.request_stop();
    }
}
