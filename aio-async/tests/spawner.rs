//! The `Send` spawner: tasks spawned from other threads run on the home
//! thread, each once; after the runtime is gone, spawning is refused.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

use aio::prelude::*;
use aio_async::Runtime;
use aio_core::Gone;
use aio_core::testing::{ThreadProbe, Watchdog};

#[test]
fn tasks_spawned_from_other_threads_run_on_the_home_thread_once_each() {
    const THREADS: u64 = 4;
    const TASKS: u64 = 1000;
    let rt = Runtime::new(AioContext::new().unwrap());
    let home = thread::current().id();
    let runs = Arc::new(AtomicU64::new(0));
    let spawners: Vec<_> = (0..THREADS)
        .map(|t| {
            let (spawner, runs) = (rt.spawner(), Arc::clone(&runs));
            thread::spawn(move || {
                (0..TASKS)
                    .map(|i| {
                        let runs = Arc::clone(&runs);
                        spawner
                            .spawn(async move {
                                assert_eq!(thread::current().id(), home, "ran off the home thread");
                                runs.fetch_add(1, Ordering::Relaxed);
                                t * TASKS + i
                            })
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let _dog = Watchdog::arm(
        format!("{} tasks spawned from {THREADS} threads", THREADS * TASKS),
        Duration::from_secs(60),
    );
    let handles: Vec<_> = spawners
        .into_iter()
        .flat_map(|s| s.join().unwrap())
        .collect();
    let outputs = rt
        .block_on(async {
            let mut outputs = Vec::new();
            for h in handles {
                outputs.push(h.await.unwrap());
            }
            outputs
        })
        .unwrap();
    let mut sorted = outputs.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..THREADS * TASKS).collect::<Vec<_>>());
    assert_eq!(runs.load(Ordering::Relaxed), THREADS * TASKS);
}

/// A task spawned from another thread once the loop is blocked (with
/// nothing else to do) wakes it, with at most one eventfd write.
#[test]
fn a_spawn_from_another_thread_wakes_a_blocked_loop() {
    let rt = Runtime::new(AioContext::new().unwrap());
    let spawner = rt.spawner();
    let home = ThreadProbe::current();
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    let _dog = Watchdog::arm(
        "a task spawned while the loop blocks",
        Duration::from_secs(30),
    );
    let before = rt.context().stats();
    let other = thread::spawn(move || {
        home.wait_until_blocked();
        spawner
            .spawn(async move { d.store(true, Ordering::Release) })
            .unwrap()
            .detach();
    });
    while !done.load(Ordering::Acquire) {
        rt.context().poll(true).unwrap();
    }
    other.join().unwrap();
    let after = rt.context().stats();
    assert!(
        after.doorbell_rings - before.doorbell_rings <= 1,
        "{after:?}"
    );
}

#[test]
fn spawning_after_the_runtime_is_gone_is_refused() {
    let rt = Runtime::new(AioContext::new().unwrap());
    let spawner = rt.spawner();
    assert!(!spawner.is_closed());
    drop(rt);
    assert!(spawner.is_closed());
    assert!(matches!(spawner.spawn(async {}), Err(Gone::Context)));
}
