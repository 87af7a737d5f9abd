//! An async consumer of a shared-memory ring fed by another thread, woken
//! by a poll source: while the loop busy-polls, the ring's index is checked
//! in the poll window (no system call on either side); when the loop
//! blocks, the producer rings the source's notifier. Prints the latency
//! from a push to the consumer's seeing it, polling off and on.
//!
//! `cargo run --release -p aio-async --example ring_consumer`

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use aio::prelude::*;
use aio_async::{PollSource, Runtime};

const ITEMS: u64 = 20_000;
const SLOTS: usize = 64;

/// A single-producer, single-consumer ring of timestamps (nanoseconds since
/// `epoch`), and the consumer's wish to be notified.
struct Ring {
    slots: [AtomicU64; SLOTS],
    head: AtomicU64,
    tail: AtomicU64,
    wants_notify: AtomicBool,
    epoch: Instant,
}

impl Ring {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn push(&self, value: u64) -> bool {
        let head = self.head.load(Ordering::Relaxed);
        if head - self.tail.load(Ordering::Acquire) == SLOTS as u64 {
            return false;
        }
        self.slots[head as usize % SLOTS].store(value, Ordering::Relaxed);
        self.head.store(head + 1, Ordering::SeqCst);
        true
    }

    fn pop(&self) -> Option<u64> {
        let tail = self.tail.load(Ordering::Relaxed);
        if tail == self.head.load(Ordering::Acquire) {
            return None;
        }
        let value = self.slots[tail as usize % SLOTS].load(Ordering::Relaxed);
        self.tail.store(tail + 1, Ordering::Release);
        Some(value)
    }

    fn has_work(&self) -> bool {
        // SeqCst: with the producer's store of `head` and load of
        // `wants_notify`, and poll_end's store of it, either the loop's last
        // check sees the item or the producer notifies.
        self.tail.load(Ordering::Relaxed) != self.head.load(Ordering::SeqCst)
    }
}

fn run(max_ns: u64) -> io::Result<Vec<u64>> {
    let ctx = AioContext::builder()
        .poll_params(PollParams {
            max_ns,
            grow: 0,
            shrink: 0,
        })
        .build()?;
    let rt = Runtime::new(ctx);
    let ring = Arc::new(Ring {
        slots: std::array::from_fn(|_| AtomicU64::new(0)),
        head: AtomicU64::new(0),
        tail: AtomicU64::new(0),
        wants_notify: AtomicBool::new(true),
        epoch: Instant::now(),
    });
    let (check, begin, end) = (ring.clone(), ring.clone(), ring.clone());
    let source = PollSource::new(move || check.has_work())?
        .on_poll_begin(move || begin.wants_notify.store(false, Ordering::SeqCst))
        .on_poll_end(move || end.wants_notify.store(true, Ordering::SeqCst));
    let notifier = source.notifier();
    let producer_ring = ring.clone();
    let producer = thread::spawn(move || {
        let ring = producer_ring;
        for _ in 0..ITEMS {
            // One item every 20 us: the consumer waits between items.
            let next = Instant::now() + Duration::from_micros(20);
            while !ring.push(ring.now()) {
                std::hint::spin_loop();
            }
            if ring.wants_notify.load(Ordering::SeqCst) {
                notifier.set().expect("the notifier");
            }
            while Instant::now() < next {
                std::hint::spin_loop();
            }
        }
    });
    let latencies = rt.block_on(async {
        let mut latencies = Vec::with_capacity(ITEMS as usize);
        while (latencies.len() as u64) < ITEMS {
            source.ready().await?;
            while let Some(pushed) = ring.pop() {
                latencies.push(ring.now().saturating_sub(pushed));
            }
        }
        Ok::<_, io::Error>(latencies)
    })??;
    producer.join().expect("the producer");
    Ok(latencies)
}

fn main() -> io::Result<()> {
    for (label, max_ns) in [("polling off", 0), ("polling on (32 us)", 32_768)] {
        let mut latencies = run(max_ns)?;
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
        println!(
            "{label:>20}: {ITEMS} items, latency median {} ns, p99 {} ns, max {} ns",
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
    Ok(())
}
