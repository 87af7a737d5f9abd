//! Dropping a context with operations in flight on its pool: every worker
//! is joined before the drop returns, queued jobs never run, and no
//! callback runs. One test in its own binary, so that the count of the
//! process's pool threads is this test's alone.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;

use aio_core::testing::Watchdog;
use aio_pool::PoolOptions;
use common::{LIMIT, context, pattern, pool_threads, temp_file, wait_for};

#[test]
fn dropping_the_context_joins_every_worker_and_runs_no_callback() {
    let _dog = Watchdog::arm("contexts with operations in flight to drop", LIMIT * 2);
    assert_eq!(pool_threads(), 0, "no pool thread before the test");
    let contents = pattern(5, 64 * 1024);
    let file = temp_file(&contents);

    // Many workers busy with reads, more reads queued.
    let (ctx, pool) = context(PoolOptions::default());
    let callbacks = Rc::new(Cell::new(0));
    for i in 0..2000u64 {
        let c = callbacks.clone();
        ctx.read_at(
            &file,
            Vec::with_capacity(32),
            (i * 32) % 65536,
            move |_, _, _| {
                c.set(c.get() + 1);
            },
        );
    }
    // Handshake: some worker is alive and has run a job.
    let (ran_tx, ran) = mpsc::channel();
    pool.spawn_blocking(move || ran_tx.send(()).unwrap())
        .unwrap();
    ran.recv_timeout(LIMIT).expect("a worker to run a job");
    assert!(pool_threads() > 0, "workers are threads of this process");
    drop(ctx);
    assert_eq!(
        pool.workers(),
        0,
        "every worker left before the drop returned"
    );
    workers_leave_the_process();
    assert_eq!(callbacks.get(), 0, "no callback ran");
    assert!(
        pool.spawn_blocking(|| ()).is_err(),
        "a dropped pool takes no job"
    );

    // One worker held by a closure until the drop has begun: the reads
    // queued behind it are dropped without running, and the drop waits for
    // the running closure.
    let (ctx, pool) = context(PoolOptions {
        max_workers: 1,
        ..PoolOptions::default()
    });
    let (started_tx, started) = mpsc::channel();
    let watcher = pool.clone();
    pool.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        assert!(watcher.wait_closed(LIMIT), "the pool's drop to begin");
    })
    .unwrap();
    started
        .recv_timeout(LIMIT)
        .expect("the worker to start the closure");
    let callbacks = Rc::new(Cell::new(0));
    for i in 0..500u64 {
        let c = callbacks.clone();
        ctx.read_at(&file, Vec::with_capacity(32), i * 32, move |_, _, _| {
            c.set(c.get() + 1);
        });
    }
    drop(ctx);
    assert_eq!(
        pool.workers(),
        0,
        "the worker left before the drop returned"
    );
    workers_leave_the_process();
    assert_eq!(callbacks.get(), 0, "no callback ran");
    assert_eq!(pool.jobs_run(), 1, "only the closure ran, no read");
}

/// The drop joined the workers; a joined thread may still be listed in
/// `/proc/self/task` for a moment (the kernel wakes the joiner as the
/// thread releases its memory, and removes its entry just after), so its
/// entry is waited for, boundedly.
fn workers_leave_the_process() {
    wait_for("the joined workers to leave /proc/self/task", || {
        pool_threads() == 0
    });
}
