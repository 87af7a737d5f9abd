//! What the monitor holds: one poll request per registration, keyed by the
//! registration's token (the request's `user_data`), and the requests that
//! wait to be handed to the kernel with the next wait.
//!
//! A registration always wants exactly one one-shot poll: it is either
//! *queued* (an arm request waits in [`Registrations::queue`]) or *in
//! flight* (the kernel holds the poll). A completion moves it back to
//! queued (the re-arm), a removal of an in-flight one queues a poll remove.
//! Requests are written into the submission queue only when the monitor
//! waits, after the handlers of the previous wait have run: a re-arm then
//! sees the fd as the handler left it (level semantics, without a spurious
//! completion for data the handler has since drained), and a registration
//! removed while its re-arm is queued costs no request at all.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::os::fd::RawFd;

use aio_core::{Interest, Readiness, ReadyEvent, Registration, Token};
use io_uring::{opcode, squeue, types};

use crate::ring::Ring;

/// The `user_data` of the monitor's own requests (poll removes), which a
/// registration's token may not take. (The core's tokens never do: they
/// are generational slot keys, and slot index `u32::MAX` is never used.)
pub(crate) const INTERNAL: u64 = u64::MAX;

/// One registration as the kernel is asked to watch it.
#[derive(Debug)]
struct Entry {
    fd: RawFd,
    /// The `poll(2)` event mask asked for.
    events: u32,
    /// Whether the kernel holds (or the submission queue carries) this
    /// registration's poll; if not, an arm request is queued.
    in_flight: bool,
}

/// A request waiting for the next wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Request {
    /// Add the poll of the registration with this token, if it still
    /// exists and is not in flight.
    Arm(u64),
    /// Remove the in-flight poll with this `user_data`.
    Disarm(u64),
}

/// The registrations and the requests queued for them.
#[derive(Debug, Default)]
pub(crate) struct Registrations {
    entries: HashMap<u64, Entry, BuildHasherDefault<TokenHasher>>,
    queue: Vec<Request>,
}

impl Registrations {
    /// How many registrations are held.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether requests wait to be handed to the kernel.
    pub(crate) fn has_queued(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Applies one registration change. On error nothing has changed.
    pub(crate) fn update(
        &mut self,
        fd: RawFd,
        old: Option<Registration>,
        new: Option<Registration>,
    ) -> io::Result<()> {
        if let Some(new) = new {
            if new.token.0 == INTERNAL {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "io_uring monitor: token u64::MAX is reserved for internal requests",
                ));
            }
            debug_assert!(old.is_none_or(|old| old.token != new.token));
            self.entries.try_reserve(1).map_err(io::Error::other)?;
        }
        self.queue.try_reserve(2).map_err(io::Error::other)?;
        if let Some(old) = old
            && let Some(entry) = self.entries.remove(&old.token.0)
            && entry.in_flight
        {
            self.queue.push(Request::Disarm(old.token.0));
        }
        if let Some(new) = new {
            self.entries.insert(
                new.token.0,
                Entry {
                    fd,
                    events: events_for(new.interest),
                    in_flight: false,
                },
            );
            self.queue.push(Request::Arm(new.token.0));
        }
        Ok(())
    }

    /// Writes the queued requests into the submission queue (submitting
    /// when it fills). Requests that could not be written stay queued.
    pub(crate) fn flush(&mut self, ring: &mut Ring) -> io::Result<()> {
        let mut done = 0;
        let mut result = Ok(());
        for request in &self.queue {
            let pushed = match *request {
                Request::Arm(token) => match self.entries.get_mut(&token) {
                    Some(entry) if !entry.in_flight => {
                        let sqe = opcode::PollAdd::new(types::Fd(entry.fd), entry.events)
                            .build()
                            .user_data(token);
                        let pushed = ring.push(&sqe);
                        entry.in_flight = pushed.is_ok();
                        pushed
                    }
                    // Removed (or replaced) since it was queued.
                    _ => Ok(()),
                },
                Request::Disarm(token) => ring.push(&poll_remove(token)),
            };
            if let Err(e) = pushed {
                result = Err(e);
                break;
            }
            done += 1;
        }
        self.queue.drain(..done);
        result
    }

    /// Takes one completion: for a live registration, queues its re-arm
    /// and appends what it saw to `events`. Completions of the monitor's
    /// own requests, and of polls whose registration is gone, are dropped.
    pub(crate) fn complete(&mut self, user_data: u64, result: i32, events: &mut Vec<ReadyEvent>) {
        if user_data == INTERNAL {
            return;
        }
        let Some(entry) = self.entries.get_mut(&user_data) else {
            return;
        };
        if !entry.in_flight {
            return;
        }
        entry.in_flight = false;
        self.queue.push(Request::Arm(user_data));
        let readiness = match result {
            // Cancelled by the kernel, not by us (we cancel only removed
            // registrations): nothing was seen, the re-arm suffices.
            r if r == -libc::ECANCELED => return,
            // The fd cannot be polled (closed: EBADF): an error, so that
            // the handler sees it and can remove itself, as POLLNVAL does
            // with poll(2).
            r if r < 0 => Readiness::ERROR,
            mask => readiness_of(mask as u32),
        };
        if !readiness.is_empty() {
            events.push(ReadyEvent {
                token: Token(user_data),
                readiness,
            });
        }
    }
}

fn poll_remove(target: u64) -> squeue::Entry {
    opcode::PollRemove::new(target).build().user_data(INTERNAL)
}

/// The `poll(2)` mask for an interest: what the poll monitor asks for.
/// Errors and hang-ups are always reported by the kernel.
pub(crate) fn events_for(interest: Interest) -> u32 {
    let mut events = 0;
    if interest.is_readable() {
        events |= (libc::POLLIN | libc::POLLPRI) as u32;
    }
    if interest.is_writable() {
        events |= libc::POLLOUT as u32;
    }
    events
}

/// What a poll completion's mask says.
pub(crate) fn readiness_of(mask: u32) -> Readiness {
    let has = |bits: libc::c_short| mask & bits as u32 != 0;
    let mut readiness = Readiness::EMPTY;
    if has(libc::POLLIN | libc::POLLPRI) {
        readiness = readiness | Readiness::READABLE;
    }
    if has(libc::POLLOUT) {
        readiness = readiness | Readiness::WRITABLE;
    }
    if has(libc::POLLHUP | libc::POLLRDHUP) {
        readiness = readiness | Readiness::HANGUP;
    }
    if has(libc::POLLERR | libc::POLLNVAL) {
        readiness = readiness | Readiness::ERROR;
    }
    readiness
}

/// A multiplicative hash for `u64` tokens: cheap on the completion path,
/// and it spreads the core's tokens (slot index low, generation high)
/// over the whole word.
#[derive(Debug, Default)]
pub(crate) struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ring::UringOptions;

    fn reg(token: u64) -> Option<Registration> {
        Some(Registration {
            token: Token(token),
            interest: Interest::READABLE,
        })
    }

    #[test]
    fn masks_map_both_ways() {
        assert_eq!(
            events_for(Interest::BOTH),
            (libc::POLLIN | libc::POLLPRI | libc::POLLOUT) as u32
        );
        assert_eq!(readiness_of(libc::POLLIN as u32), Readiness::READABLE);
        assert_eq!(readiness_of(libc::POLLOUT as u32), Readiness::WRITABLE);
        assert_eq!(readiness_of(libc::POLLRDHUP as u32), Readiness::HANGUP);
        assert_eq!(readiness_of(libc::POLLNVAL as u32), Readiness::ERROR);
        assert!(readiness_of(0).is_empty());
    }

    #[test]
    fn a_queued_arm_of_a_removed_registration_costs_nothing() {
        let mut ring = Ring::open(&UringOptions::default()).unwrap();
        let mut r = Registrations::default();
        r.update(0, None, reg(1)).unwrap();
        r.update(0, reg(1), None).unwrap();
        assert_eq!(r.queue, [Request::Arm(1)]);
        r.flush(&mut ring).unwrap();
        assert!(!r.has_queued());
        assert!(!ring.has_completions());
        assert_eq!(
            ring.pending(false),
            aio_core::Pending::No,
            "nothing submitted"
        );
    }

    #[test]
    fn completions_re_arm_live_registrations_only() {
        let mut ring = Ring::open(&UringOptions::default()).unwrap();
        let mut r = Registrations::default();
        let mut events = Vec::new();
        r.update(0, None, reg(1)).unwrap();
        r.update(1, None, reg(2)).unwrap();
        r.flush(&mut ring).unwrap();
        // Both polls are in flight (written to the queue); 2 is replaced.
        r.update(1, reg(2), reg(3)).unwrap();
        assert_eq!(r.queue, [Request::Disarm(2), Request::Arm(3)]);
        r.queue.clear();
        r.complete(1, libc::POLLIN as i32, &mut events);
        r.complete(2, libc::POLLIN as i32, &mut events);
        r.complete(INTERNAL, -libc::ENOENT, &mut events);
        r.complete(99, libc::POLLIN as i32, &mut events);
        assert_eq!(
            events,
            [ReadyEvent {
                token: Token(1),
                readiness: Readiness::READABLE
            }]
        );
        assert_eq!(r.queue, [Request::Arm(1)], "only the live one is re-armed");
        // A second completion for the same poll (none can come) is ignored.
        r.complete(1, libc::POLLIN as i32, &mut events);
        assert_eq!(events.len(), 1);
        assert_eq!(r.queue, [Request::Arm(1)]);
    }
}
