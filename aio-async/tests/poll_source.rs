//! Poll sources: a task woken by the loop's busy polling, with no eventfd
//! write, and by the notifier when the loop blocks.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use aio::prelude::*;
use aio_async::{PollSource, Runtime};
use aio_core::ManualClock;
use aio_core::testing::{ThreadProbe, Watchdog};

/// A counter fed by another thread, which notifies only when the consumer
/// asked for it (it is not being polled).
struct Feed {
    produced: AtomicU64,
    consumed: AtomicU64,
    wants_notify: AtomicBool,
    /// Notifications the producer sent.
    notified: AtomicU64,
}

impl Feed {
    fn new() -> Arc<Feed> {
        Arc::new(Feed {
            produced: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            wants_notify: AtomicBool::new(true),
            notified: AtomicU64::new(0),
        })
    }

    /// The poll source's check. SeqCst, as the producer's store and load:
    /// with `poll_end`'s store of `wants_notify`, either the loop's last
    /// check sees the item or the producer sees that it must notify.
    fn has_work(&self) -> bool {
        self.produced.load(Ordering::SeqCst) > self.consumed.load(Ordering::Acquire)
    }
}

/// A poll source on `feed` whose hooks turn the producer's notifications
/// off while the loop polls.
fn source_on(feed: &Arc<Feed>) -> PollSource {
    let (f, fb, fe) = (Arc::clone(feed), Arc::clone(feed), Arc::clone(feed));
    PollSource::new(move || f.has_work())
        .unwrap()
        .on_poll_begin(move || fb.wants_notify.store(false, Ordering::SeqCst))
        .on_poll_end(move || fe.wants_notify.store(true, Ordering::SeqCst))
}

/// Consumes `items` items of `feed` through `source`, one `ready` each.
fn consume(rt: &Runtime, source: &PollSource, feed: &Feed, items: u64) {
    rt.block_on(async {
        while feed.consumed.load(Ordering::Acquire) < items {
            source.ready().await.unwrap();
            assert!(feed.has_work(), "ready() returned without work");
            let produced = feed.produced.load(Ordering::Acquire);
            feed.consumed.store(produced, Ordering::Release);
        }
    })
    .unwrap();
}

/// Polling off: the producer hands over each item only once the home thread
/// is blocked in the kernel, so every item is a blocking wait ended by the
/// source's notifier, and a lost wake-up hangs (the watchdog says where).
#[test]
fn a_poll_source_without_polling_is_woken_by_its_notifier() {
    const ITEMS: u64 = 200;
    let rt = Runtime::new(
        AioContext::builder()
            .poll_params(PollParams::OFF)
            .build()
            .unwrap(),
    );
    let feed = Feed::new();
    let source = source_on(&feed);
    let notifier = source.notifier();
    let home = ThreadProbe::current();
    let f = Arc::clone(&feed);
    let producer = thread::spawn(move || {
        for n in 1..=ITEMS {
            while f.consumed.load(Ordering::Acquire) < n - 1 {
                thread::yield_now();
            }
            home.wait_until_blocked();
            f.produced.store(n, Ordering::SeqCst);
            assert!(f.wants_notify.load(Ordering::SeqCst), "polling is off");
            f.notified.fetch_add(1, Ordering::Relaxed);
            notifier.set().unwrap();
        }
    });
    let _dog = Watchdog::arm(
        format!("{ITEMS} items, each after the loop blocked, through a poll source's notifier"),
        Duration::from_secs(60),
    );
    let before = rt.context().stats();
    consume(&rt, &source, &feed, ITEMS);
    producer.join().unwrap();
    let after = rt.context().stats();
    assert_eq!(feed.consumed.load(Ordering::Relaxed), ITEMS);
    assert!(
        after.blocking_waits - before.blocking_waits >= ITEMS,
        "{ITEMS} items, {} blocking waits",
        after.blocking_waits - before.blocking_waits
    );
}

/// Polling on, with a manual clock that moves 100 ns per reading and work
/// that shows up every 10th call of the check (the loop's calls count):
/// once the notifier, set by hand before the loop starts, has put the
/// source on the polled list (it joins when it is first ready), every item
/// is found by the busy-poll window. After the first item the loop never
/// blocks, nothing rings the doorbell, and the task sees every item.
#[test]
fn a_polled_source_is_served_by_busy_polling_alone() {
    const ITEMS: u64 = 500;
    let clock = ManualClock::new();
    clock.auto_advance(Duration::from_nanos(100));
    let ctx = AioContext::builder()
        .clock(clock.clone())
        .poll_params(PollParams {
            max_ns: 1_000_000,
            grow: 0,
            shrink: 0,
        })
        .build()
        .unwrap();
    let rt = Runtime::new(ctx);
    let calls = Rc::new(Cell::new(0u64));
    let available = Rc::new(Cell::new(0u64));
    let consumed = Rc::new(Cell::new(0u64));
    let (c, a, k) = (calls.clone(), available.clone(), consumed.clone());
    let source = PollSource::new(move || {
        c.set(c.get() + 1);
        if c.get().is_multiple_of(10) {
            a.set(a.get() + 1);
        }
        a.get() > k.get()
    })
    .unwrap();
    // The notifier brings the source onto the polled list: its event is
    // the first the loop sees (the first item comes at the 10th check).
    source.notifier().set().unwrap();
    let _dog = Watchdog::arm(
        format!("{ITEMS} items found by busy polling (a blocking wait would hang)"),
        Duration::from_secs(60),
    );
    let mut after_first = None;
    rt.block_on(async {
        while consumed.get() < ITEMS {
            source.ready().await.unwrap();
            consumed.set(available.get());
            if after_first.is_none() {
                after_first = Some(rt.context().stats());
            }
        }
    })
    .unwrap();
    let (first, last) = (after_first.unwrap(), rt.context().stats());
    assert!(consumed.get() >= ITEMS);
    assert_eq!(
        last.blocking_waits - first.blocking_waits,
        0,
        "the loop blocked: {last:?}"
    );
    assert!(
        last.poll_hits - first.poll_hits >= ITEMS - 1,
        "{} poll hits for {ITEMS} items: {last:?}",
        last.poll_hits - first.poll_hits
    );
    assert_eq!(last.doorbell_rings, first.doorbell_rings);
}

/// Polling on and a producer thread on a real clock: the notifications
/// are turned off while the loop polls and on before it blocks (the virtio
/// scheme); however the two threads interleave, no item is lost.
#[test]
fn a_polled_source_with_a_producer_thread_loses_no_item() {
    const ITEMS: u64 = 20_000;
    let ctx = AioContext::builder()
        .poll_params(PollParams::IOTHREAD)
        .build()
        .unwrap();
    let rt = Runtime::new(ctx);
    let feed = Feed::new();
    let source = source_on(&feed);
    let notifier = source.notifier();
    let f = Arc::clone(&feed);
    let producer = thread::spawn(move || {
        for n in 1..=ITEMS {
            while f.consumed.load(Ordering::Acquire) < n - 1 {
                std::hint::spin_loop();
            }
            f.produced.store(n, Ordering::SeqCst);
            if f.wants_notify.load(Ordering::SeqCst) {
                f.notified.fetch_add(1, Ordering::Relaxed);
                notifier.set().unwrap();
            }
        }
    });
    let _dog = Watchdog::arm(
        format!("{ITEMS} items through a polled source, notifications toggled by its hooks"),
        Duration::from_secs(120),
    );
    consume(&rt, &source, &feed, ITEMS);
    producer.join().unwrap();
    assert_eq!(feed.consumed.load(Ordering::Relaxed), ITEMS);
}
