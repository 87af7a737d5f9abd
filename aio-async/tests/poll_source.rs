//! Poll sources: a task woken by the loop's busy polling, with no eventfd
//! write, and by the notifier when the loop blocks.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use aio::prelude::*;
use aio_async::{PollSource, Runtime};
use aio_core::Stats;
use aio_core::testing::Watchdog;

/// A counter fed by another thread, which notifies only when the consumer
/// asked for it (it is not being polled).
struct Feed {
    produced: AtomicU64,
    wants_notify: AtomicBool,
}

fn run_consumer(poll_params: PollParams, items: u64) -> (Stats, Stats) {
    let ctx = AioContext::builder()
        .poll_params(poll_params)
        .build()
        .unwrap();
    let rt = Runtime::new(ctx);
    let feed = Arc::new(Feed {
        produced: AtomicU64::new(0),
        wants_notify: AtomicBool::new(true),
    });
    let consumed = Arc::new(AtomicU64::new(0));
    let (f, c) = (Arc::clone(&feed), Arc::clone(&consumed));
    let (fb, fe) = (Arc::clone(&feed), Arc::clone(&feed));
    let source =
        PollSource::new(move || f.produced.load(Ordering::Acquire) > c.load(Ordering::Acquire))
            .unwrap()
            .on_poll_begin(move || fb.wants_notify.store(false, Ordering::SeqCst))
            .on_poll_end(move || fe.wants_notify.store(true, Ordering::SeqCst));
    let notifier = source.notifier();
    let (f, c) = (Arc::clone(&feed), Arc::clone(&consumed));
    let producer = thread::spawn(move || {
        for n in 1..=items {
            // One item at a time: wait until the last one was taken.
            while c.load(Ordering::Acquire) < n - 1 {
                std::hint::spin_loop();
            }
            f.produced.store(n, Ordering::SeqCst);
            if f.wants_notify.load(Ordering::SeqCst) {
                notifier.set().unwrap();
            }
        }
    });
    let _dog = Watchdog::arm(
        format!("{items} items through a poll source"),
        Duration::from_secs(60),
    );
    let before = rt.context().stats();
    rt.block_on(async {
        while consumed.load(Ordering::Acquire) < items {
            source.ready().await.unwrap();
            let produced = feed.produced.load(Ordering::Acquire);
            consumed.store(produced, Ordering::Release);
        }
    })
    .unwrap();
    producer.join().unwrap();
    (before, rt.context().stats())
}

#[test]
fn a_poll_source_without_polling_is_woken_by_its_notifier() {
    let (before, after) = run_consumer(
        PollParams {
            max_ns: 0,
            grow: 0,
            shrink: 0,
        },
        2000,
    );
    assert!(after.blocking_waits > before.blocking_waits, "{after:?}");
}

#[test]
fn a_polled_source_is_served_by_busy_polling() {
    let params = PollParams {
        max_ns: 50_000_000,
        grow: 0,
        shrink: 0,
    };
    let (before, after) = run_consumer(params, 20_000);
    let hits = after.poll_hits - before.poll_hits;
    assert!(
        hits > 1000,
        "busy polling found {hits} items of 20000: {after:?}"
    );
}
