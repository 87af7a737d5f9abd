//! Wakes from other threads: none lost under stress, and a burst costs at
//! most one eventfd write per blocking wait.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::thread;
use std::time::Duration;

use aio::prelude::*;
use aio_async::Runtime;
use aio_core::testing::Watchdog;
use futures::task::AtomicWaker;

const THREADS: u64 = 8;
const WAKES: u64 = 100_000;

/// What one waking thread and its task share.
#[derive(Default)]
struct Channel {
    /// Wakes sent so far.
    sent: AtomicU64,
    /// The highest count the task has seen.
    seen: AtomicU64,
    waker: AtomicWaker,
}

/// Each of 8 threads wakes its own task 100k times, each wake only after
/// the task saw the previous one: a lost wake-up leaves a thread waiting
/// forever, and the watchdog says which. Every task completes once, having
/// seen every wake.
#[test]
fn eight_threads_times_100k_wakes_lose_none() {
    let rt = Runtime::new(AioContext::new().unwrap());
    let channels: Vec<Arc<Channel>> = (0..THREADS).map(|_| Arc::default()).collect();
    let tasks: Vec<_> = channels
        .iter()
        .map(|ch| {
            let ch = Arc::clone(ch);
            rt.spawn_local(std::future::poll_fn(move |cx| {
                ch.waker.register(cx.waker());
                let sent = ch.sent.load(Ordering::Acquire);
                ch.seen.store(sent, Ordering::Release);
                if sent == WAKES {
                    Poll::Ready(sent)
                } else {
                    Poll::Pending
                }
            }))
        })
        .collect();
    let _dog = Watchdog::arm(
        format!("{THREADS} threads x {WAKES} wakes, each acknowledged by its task"),
        Duration::from_secs(120),
    );
    let senders: Vec<_> = channels
        .iter()
        .map(|ch| {
            let ch = Arc::clone(ch);
            thread::spawn(move || {
                for n in 1..=WAKES {
                    while ch.seen.load(Ordering::Acquire) < n - 1 {
                        std::hint::spin_loop();
                        thread::yield_now();
                    }
                    ch.sent.store(n, Ordering::Release);
                    ch.waker.wake();
                }
            })
        })
        .collect();
    let before = rt.context().stats();
    let outputs = rt
        .block_on(async {
            let mut outputs = Vec::new();
            for task in tasks {
                outputs.push(task.await.unwrap());
            }
            outputs
        })
        .unwrap();
    for s in senders {
        s.join().unwrap();
    }
    assert_eq!(outputs, vec![WAKES; THREADS as usize]);
    let after = rt.context().stats();
    let rings = after.doorbell_rings - before.doorbell_rings;
    let blocks = after.announced_blocks - before.announced_blocks;
    assert!(
        rings <= blocks,
        "{rings} eventfd writes for {blocks} blocking waits"
    );
}

/// A burst of wakes from another thread: the task runs once for the lot,
/// and the burst writes the eventfd at most once.
#[test]
fn a_burst_of_remote_wakes_runs_the_task_once() {
    let rt = Runtime::new(AioContext::new().unwrap());
    let ch = Arc::new(Channel::default());
    let polls = Arc::new(AtomicU64::new(0));
    let (c, p) = (Arc::clone(&ch), Arc::clone(&polls));
    let task = rt.spawn_local(std::future::poll_fn(move |cx| {
        p.fetch_add(1, Ordering::Relaxed);
        c.waker.register(cx.waker());
        c.seen.store(1, Ordering::Release);
        if c.sent.load(Ordering::Acquire) >= 1000 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }));
    // Let the task register; then the loop blocks with nothing to do.
    rt.context().poll(false).unwrap();
    assert_eq!(polls.load(Ordering::Relaxed), 1);
    let before = rt.context().stats();
    let c = Arc::clone(&ch);
    let sender = thread::spawn(move || {
        for _ in 0..1000 {
            c.sent.fetch_add(1, Ordering::Release);
            c.waker.wake();
        }
    });
    let _dog = Watchdog::arm("the task woken by a burst", Duration::from_secs(30));
    sender.join().unwrap();
    rt.block_on(task).unwrap().unwrap();
    let after = rt.context().stats();
    assert!(
        after.doorbell_rings - before.doorbell_rings <= 1,
        "{after:?}"
    );
    assert_eq!(
        polls.load(Ordering::Relaxed),
        2,
        "one poll for the whole burst"
    );
}
