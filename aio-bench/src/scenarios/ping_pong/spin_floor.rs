//! The spinning references, which have no loop, no fd and no sleep (their
//! partners spin only while a batch runs and park in between):
//!
//! * the `spin-floor`: two threads bouncing an atomic, the physical limit
//!   of a round trip between the two CPUs, and the reference of forms (b)
//!   and (c);
//! * `spin-mailbox`: the same threads bouncing form (c)'s messages through
//!   its two [`Mailbox`]es: what the mailbox protocol costs by itself, so
//!   that what an aio row costs beyond it is the loop's.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use super::harness::{Lifeline, Partner, PingPong};
use super::mailbox::Mailbox;
use crate::env::Cpus;

/// A partner thread that spins while a batch runs, running a step each
/// time round, and parks in between.
struct Spinner {
    active: Arc<AtomicBool>,
    partner: Partner,
}

impl Spinner {
    /// Starts the partner thread, parked, with `step` to run while active.
    fn start(
        cpus: &Cpus,
        name: &str,
        mut step: impl FnMut() -> io::Result<()> + Send + 'static,
    ) -> io::Result<Spinner> {
        let active = Arc::new(AtomicBool::new(false));
        let life = Arc::new(Lifeline::default());
        let thread = {
            let (active, life) = (Arc::clone(&active), Arc::clone(&life));
            cpus.spawn_partner(0, name, move || {
                let mut result = Ok(());
                while !life.stopping() && result.is_ok() {
                    if !active.load(Ordering::Acquire) {
                        thread::park();
                        continue;
                    }
                    result = step();
                    std::hint::spin_loop();
                }
                life.died(result, || {});
            })?
        };
        let unpark = thread.thread().clone();
        let partner = Partner {
            life,
            wake: Box::new(move || unpark.unpark()),
            thread: Some(thread),
        };
        Ok(Spinner { active, partner })
    }

    /// Wakes the partner for a batch, if it is parked.
    fn activate(&self) {
        if !self.active.swap(true, Ordering::AcqRel) {
            (self.partner.wake)();
        }
    }

    /// Lets the partner park after this batch.
    fn rest(&self) {
        self.active.store(false, Ordering::Release);
    }

    /// An error if the partner thread has exited.
    fn check(&self) -> io::Result<()> {
        self.partner.life.check()
    }
}

/// Two threads bouncing an atomic: odd values are pings, the partner
/// answers by adding one. The partner spins only while a batch runs.
pub(super) struct SpinPair {
    seq: Arc<AtomicU64>,
    spinner: Spinner,
}

impl SpinPair {
    pub(super) fn new(cpus: &Cpus) -> io::Result<SpinPair> {
        let seq = Arc::new(AtomicU64::new(0));
        let spinner = {
            let seq = Arc::clone(&seq);
            Spinner::start(cpus, "spin", move || {
                let v = seq.load(Ordering::Acquire);
                if v % 2 == 1 {
                    seq.store(v + 1, Ordering::Release);
                }
                Ok(())
            })?
        };
        Ok(SpinPair { seq, spinner })
    }
}

impl PingPong for SpinPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        self.spinner.activate();
        for _ in 0..n {
            let v = self.seq.load(Ordering::Relaxed);
            self.seq.store(v + 1, Ordering::Release);
            while self.seq.load(Ordering::Acquire) != v + 2 {
                std::hint::spin_loop();
            }
        }
        self.spinner.check()
    }

    fn rest(&mut self) {
        self.spinner.rest();
    }
}

/// Two threads bouncing messages through form (c)'s two mailboxes, each
/// spinning on the count of its own: a read-modify-write, a fence and a
/// look at the "notify me" flag per message, one cache line per
/// direction, and no eventfd write (both receivers always poll).
pub(super) struct SpinMailboxPair {
    to_partner: Arc<Mailbox>,
    to_home: Arc<Mailbox>,
    spinner: Spinner,
}

impl SpinMailboxPair {
    pub(super) fn new(cpus: &Cpus) -> io::Result<SpinMailboxPair> {
        let (to_partner, to_home) = (Mailbox::new(true)?, Mailbox::new(true)?);
        to_partner.receiver_always_polls();
        to_home.receiver_always_polls();
        let spinner = {
            let (inbox, reply) = (Arc::clone(&to_partner), Arc::clone(&to_home));
            let mut seen = inbox.count();
            Spinner::start(cpus, "spin-mailbox", move || {
                let count = inbox.count();
                if count == seen {
                    return Ok(());
                }
                seen = count;
                reply.send()
            })?
        };
        Ok(SpinMailboxPair {
            to_partner,
            to_home,
            spinner,
        })
    }
}

impl PingPong for SpinMailboxPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        self.spinner.activate();
        for _ in 0..n {
            let before = self.to_home.count();
            self.to_partner.send()?;
            while self.to_home.count() == before {
                self.spinner.check()?;
                std::hint::spin_loop();
            }
        }
        self.spinner.check()
    }

    fn rest(&mut self) {
        self.spinner.rest();
    }
}
