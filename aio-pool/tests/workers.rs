//! What a pool's workers do around their jobs: the start hook each runs
//! first, and the spin after a job that never holds up the next job or the
//! pool's drop.

mod common;

use std::cell::Cell;
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::{Arc, Barrier, Mutex, mpsc};
use std::thread::ThreadId;
use std::time::Duration;

use aio_core::testing::Watchdog;
use aio_pool::PoolOptions;
use common::{LIMIT, context, pattern, run_until, temp_file};

thread_local! {
    static HOOKED: Cell<bool> = const { Cell::new(false) };
}

#[test]
fn each_worker_runs_the_start_hook_once_on_its_thread_before_its_first_job() {
    const WORKERS: usize = 3;
    let _dog = Watchdog::arm("three workers held at a barrier", LIMIT);
    let hooked_on = Arc::new(Mutex::new(Vec::<(ThreadId, Option<String>)>::new()));
    let record = Arc::clone(&hooked_on);
    let options = PoolOptions {
        max_workers: WORKERS,
        ..PoolOptions::default()
    }
    .on_worker_start(move || {
        HOOKED.with(|h| h.set(true));
        let me = std::thread::current();
        record
            .lock()
            .unwrap()
            .push((me.id(), me.name().map(str::to_owned)));
    });
    let (_ctx, pool) = context(options);
    assert!(
        hooked_on.lock().unwrap().is_empty(),
        "no worker before a job"
    );

    // Every job waits at the barrier, so each runs on a worker of its own.
    let barrier = Arc::new(Barrier::new(WORKERS + 1));
    let (ran_tx, ran) = mpsc::channel();
    for _ in 0..WORKERS {
        let (barrier, ran_tx) = (Arc::clone(&barrier), ran_tx.clone());
        pool.spawn_blocking(move || {
            ran_tx
                .send((std::thread::current().id(), HOOKED.with(Cell::get)))
                .unwrap();
            barrier.wait();
        })
        .unwrap();
    }
    let mut job_threads = HashSet::new();
    for _ in 0..WORKERS {
        let (thread, hooked) = ran.recv_timeout(LIMIT).expect("a job to start");
        assert!(hooked, "the hook ran on the job's thread before the job");
        job_threads.insert(thread);
    }
    barrier.wait();

    let hooked_on = hooked_on.lock().unwrap().clone();
    assert_eq!(hooked_on.len(), WORKERS, "once per worker: {hooked_on:?}");
    let hook_threads: HashSet<_> = hooked_on.iter().map(|(id, _)| *id).collect();
    assert_eq!(hook_threads, job_threads, "on the workers' own threads");
    for (_, name) in &hooked_on {
        assert_eq!(name.as_deref(), Some("aio-pool"));
    }
}

#[test]
fn a_panicking_start_hook_leaves_its_worker_serving() {
    let _dog = Watchdog::arm("a job after a panicking start hook", LIMIT);
    let options = PoolOptions {
        max_workers: 1,
        ..PoolOptions::default()
    }
    .on_worker_start(|| panic!("a start hook that panics (expected in this test)"));
    let (_ctx, pool) = context(options);
    let (tx, rx) = mpsc::channel();
    pool.spawn_blocking(move || tx.send(()).unwrap()).unwrap();
    rx.recv_timeout(LIMIT)
        .expect("the worker to run the job after its hook panicked");
}

/// A minute's spin: a job queued while the worker spins is taken at once,
/// and the drop ends the spin (the watchdog, shorter than the spin, fails
/// the test if either waited it out).
#[test]
fn a_long_spin_neither_delays_the_next_job_nor_the_drop() {
    let _dog = Watchdog::arm("jobs and the drop of a pool that spins a minute", LIMIT);
    let (ctx, pool) = context(PoolOptions {
        max_workers: 1,
        spin: Duration::from_secs(60),
        ..PoolOptions::default()
    });
    let file = temp_file(&pattern(4, 4096));
    let finished = Rc::new(Cell::new(0));
    for round in 1..=3 {
        // One read at a time: each is queued while the one worker spins
        // (or is on its way back from the last one).
        let f = finished.clone();
        ctx.read_at(&file, Vec::with_capacity(64), 0, move |_, n, _| {
            assert_eq!(n.unwrap(), 64);
            f.set(f.get() + 1);
        });
        run_until(&ctx, "a read queued behind a spinning worker", || {
            finished.get() == round
        });
    }
    assert_eq!(pool.workers(), 1, "the one worker served every read");
    drop(ctx);
    assert_eq!(pool.workers(), 0, "the drop ended the spin and joined it");
}
