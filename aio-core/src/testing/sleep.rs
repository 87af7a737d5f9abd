//! `SleepMonitor`: a monitor that watches no fd readiness and sleeps for the
//! timeout; enough for examples that use only bottom halves and timers.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use crate::{FdMonitor, Pending, ReadyEvent, Registration};

/// A monitor that accepts registrations, never reports an fd ready, and
/// sleeps for the timeout (a millisecond at a time when there is none, so a
/// notification is seen soon).
#[derive(Debug, Default)]
pub struct SleepMonitor {
    registered: usize,
}

impl SleepMonitor {
    /// A new sleeper.
    pub fn new() -> SleepMonitor {
        SleepMonitor::default()
    }
}

impl FdMonitor for SleepMonitor {
    fn name(&self) -> &'static str {
        "sleep"
    }

    fn update(
        &mut self,
        _fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        self.registered = self.registered + usize::from(new.is_some()) - usize::from(old.is_some());
        Ok(())
    }

    fn wait(&mut self, _events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        std::thread::sleep(
            timeout
                .unwrap_or(Duration::from_millis(1))
                .min(Duration::from_millis(1)),
        );
        Ok(())
    }

    fn pending(&mut self) -> Pending {
        Pending::Unknown
    }
}
