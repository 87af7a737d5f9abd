//! The `spin-floor`: two threads bouncing an atomic, the physical limit of
//! a round trip between the two CPUs, and the reference of forms (b) and
//! (c).
//!
//! Separate because it has no loop, no fd and no sleep: its partner spins
//! only while a batch runs and parks in between.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;

use super::harness::{Lifeline, Partner, PingPong};
use crate::env::Cpus;

/// Two threads bouncing an atomic: odd values are pings, the partner
/// answers by adding one. The partner spins only while a batch runs.
pub(super) struct SpinPair {
    seq: Arc<AtomicU64>,
    active: Arc<AtomicBool>,
    partner: Partner,
}

impl SpinPair {
    pub(super) fn new(cpus: &Cpus) -> io::Result<SpinPair> {
        let seq = Arc::new(AtomicU64::new(0));
        let active = Arc::new(AtomicBool::new(false));
        let life = Arc::new(Lifeline::default());
        let thread = {
            let (seq, active, life) = (Arc::clone(&seq), Arc::clone(&active), Arc::clone(&life));
            cpus.spawn_partner(0, "spin", move || {
                while !life.stopping() {
                    if !active.load(Ordering::Acquire) {
                        thread::park();
                        continue;
                    }
                    let v = seq.load(Ordering::Acquire);
                    if v % 2 == 1 {
                        seq.store(v + 1, Ordering::Release);
                    }
                    std::hint::spin_loop();
                }
                life.died(Ok(()), || {});
            })?
        };
        let unpark = thread.thread().clone();
        Ok(SpinPair {
            seq,
            active,
            partner: Partner {
                life,
                wake: Box::new(move || unpark.unpark()),
                thread: Some(thread),
            },
        })
    }
}

impl PingPong for SpinPair {
    fn round_trips(&mut self, n: u64) -> io::Result<()> {
        if !self.active.swap(true, Ordering::AcqRel) {
            (self.partner.wake)();
        }
        for _ in 0..n {
            let v = self.seq.load(Ordering::Relaxed);
            self.seq.store(v + 1, Ordering::Release);
            while self.seq.load(Ordering::Acquire) != v + 2 {
                std::hint::spin_loop();
            }
        }
        self.partner.life.check()
    }

    fn rest(&mut self) {
        self.active.store(false, Ordering::Release);
    }
}
