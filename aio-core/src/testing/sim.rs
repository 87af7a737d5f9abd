//! A simulated monitor: readiness is whatever the test says it is, and no
//! system call is made to learn it.
//!
//! A [`SimWorld`] holds the readiness of fds (and raw events to inject, such
//! as events for stale tokens); [`SimMonitor`] reports from it, level-
//! triggered like a kernel monitor. Other threads may change the world, and
//! a blocked wait sees the change. A context built by the harness on the sim
//! uses a doorbell that rings in the world too, so remote wake-ups work
//! without an eventfd being polled.

use std::collections::HashMap;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::doorbell::Doorbell;
use crate::{EventNotifier, FdMonitor, Interest, Pending, Readiness, ReadyEvent, Registration};

/// The simulated kernel: readiness per fd, shared by monitors and tests.
#[derive(Debug, Default)]
pub struct SimWorld {
    state: Mutex<WorldState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct WorldState {
    ready: HashMap<RawFd, Readiness>,
    injected: Vec<ReadyEvent>,
}

impl SimWorld {
    /// An empty world.
    pub fn new() -> Arc<SimWorld> {
        Arc::default()
    }

    /// Adds `readiness` to what `fd` shows, and wakes blocked waits.
    pub fn set_ready(&self, fd: RawFd, readiness: Readiness) {
        let mut state = self.lock();
        let r = state.ready.entry(fd).or_default();
        *r = *r | readiness;
        drop(state);
        self.changed.notify_all();
    }

    /// Makes `fd` show nothing; returns what it showed.
    pub fn clear(&self, fd: RawFd) -> Readiness {
        self.lock().ready.remove(&fd).unwrap_or_default()
    }

    /// What `fd` shows.
    pub fn readiness(&self, fd: RawFd) -> Readiness {
        self.lock().ready.get(&fd).copied().unwrap_or_default()
    }

    /// Queues a raw event for the next wait of a monitor, whatever it holds:
    /// a stale token, a duplicate.
    pub fn inject(&self, event: ReadyEvent) {
        self.lock().injected.push(event);
        self.changed.notify_all();
    }

    /// A monitor that reports from this world.
    pub fn monitor(self: &Arc<SimWorld>) -> SimMonitor {
        SimMonitor {
            world: Arc::clone(self),
            registered: HashMap::new(),
            observable: false,
            virtual_time: false,
        }
    }

    fn lock(&self) -> MutexGuard<'_, WorldState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A monitor over a [`SimWorld`].
#[derive(Debug)]
pub struct SimMonitor {
    world: Arc<SimWorld>,
    registered: HashMap<RawFd, Registration>,
    observable: bool,
    virtual_time: bool,
}

impl SimMonitor {
    /// Makes the monitor show readiness without a system call, as io_uring's
    /// completion ring does: the core may then busy-poll handlers without
    /// `poll` callbacks and evict idle polled handlers.
    pub fn observable(mut self, observable: bool) -> SimMonitor {
        self.observable = observable;
        self
    }

    /// Makes timed waits return at once instead of sleeping: for contexts
    /// on a manual clock, where the harness moves time itself.
    pub fn virtual_time(mut self, virtual_time: bool) -> SimMonitor {
        self.virtual_time = virtual_time;
        self
    }

    /// How many fds are registered.
    pub fn registered(&self) -> usize {
        self.registered.len()
    }

    fn collect(&self, state: &mut WorldState, events: &mut Vec<ReadyEvent>) {
        events.append(&mut state.injected);
        for (fd, registration) in &self.registered {
            let shown = state.ready.get(fd).copied().unwrap_or_default();
            let readiness = mask(shown, registration.interest);
            if !readiness.is_empty() {
                events.push(ReadyEvent {
                    token: registration.token,
                    readiness,
                });
            }
        }
    }
}

/// What a registration with `interest` reports of `shown`: hang-up and
/// errors always, as poll(2) does.
fn mask(shown: Readiness, interest: Interest) -> Readiness {
    let mut wanted = Readiness::HANGUP | Readiness::ERROR;
    if interest.is_readable() {
        wanted = wanted | Readiness::READABLE;
    }
    if interest.is_writable() {
        wanted = wanted | Readiness::WRITABLE;
    }
    let mut out = Readiness::EMPTY;
    for bit in [
        Readiness::READABLE,
        Readiness::WRITABLE,
        Readiness::HANGUP,
        Readiness::ERROR,
    ] {
        if shown.contains(bit) && wanted.contains(bit) {
            out = out | bit;
        }
    }
    out
}

impl FdMonitor for SimMonitor {
    fn name(&self) -> &'static str {
        "sim"
    }

    fn update(
        &mut self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        if self.registered.get(&fd).copied() != old {
            return Err(io::Error::other(format!(
                "sim: fd {fd} holds {:?}, the core says {old:?}",
                self.registered.get(&fd)
            )));
        }
        match new {
            Some(registration) => self.registered.insert(fd, registration),
            None => self.registered.remove(&fd),
        };
        Ok(())
    }

    fn wait(&mut self, events: &mut Vec<ReadyEvent>, timeout: Option<Duration>) -> io::Result<()> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.world.lock();
        loop {
            self.collect(&mut state, events);
            if !events.is_empty() || timeout == Some(Duration::ZERO) {
                return Ok(());
            }
            if self.virtual_time && timeout.is_some() {
                return Ok(());
            }
            state = match deadline {
                None => self
                    .world
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(());
                    }
                    let (state, _) = self
                        .world
                        .changed
                        .wait_timeout(state, left)
                        .unwrap_or_else(PoisonError::into_inner);
                    state
                }
            };
        }
    }

    fn pending(&mut self) -> Pending {
        if !self.observable {
            return Pending::Unknown;
        }
        let state = self.world.lock();
        let shows = |(fd, registration): (&RawFd, &Registration)| {
            let shown = state.ready.get(fd).copied().unwrap_or_default();
            !mask(shown, registration.interest).is_empty()
        };
        if !state.injected.is_empty() || self.registered.iter().any(shows) {
            Pending::Yes
        } else {
            Pending::No
        }
    }
}

/// The doorbell of a context on the sim: rings by making a world fd
/// readable. The fd is a real (never written) eventfd, so that it is a
/// valid, unique fd number.
pub(crate) struct SimDoorbell {
    world: Arc<SimWorld>,
    identity: EventNotifier,
}

impl SimDoorbell {
    pub(crate) fn new(world: Arc<SimWorld>) -> io::Result<SimDoorbell> {
        Ok(SimDoorbell {
            world,
            identity: EventNotifier::new()?,
        })
    }
}

impl Doorbell for SimDoorbell {
    fn ring(&self) {
        self.world.set_ready(self.raw_fd(), Readiness::READABLE);
    }

    fn drain(&self) {
        self.world.clear(self.raw_fd());
    }

    fn raw_fd(&self) -> RawFd {
        self.identity.as_raw_fd()
    }
}
