//! The pool wakes a loop that blocks in the kernel (poll, epoll: no timer
//! armed, so a wait ends only when the doorbell rings). A lost wake-up
//! hangs the loop, and the watchdog then aborts the test saying which.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::mpsc;

use aio_core::testing::Watchdog;
use aio_core::{ContextBuilder, FdMonitor};
use aio_pool::{Pool, PoolOptions};
use common::{LIMIT, pattern, temp_file};

fn monitors() -> Vec<Box<dyn FdMonitor>> {
    vec![
        Box::new(fdmon_poll::PollMonitor::new()),
        Box::new(fdmon_epoll::EpollMonitor::new().expect("an epoll instance")),
    ]
}

#[test]
fn a_blocked_loop_is_woken_by_each_completion_and_each_burst() {
    for monitor in monitors() {
        let name = monitor.name();
        let (tx, rx) = mpsc::channel();
        let ctx = ContextBuilder::new(monitor)
            .ops_fallback(move |remote| {
                let pool = Pool::with_options(
                    remote,
                    PoolOptions {
                        max_workers: 4,
                        ..PoolOptions::default()
                    },
                );
                tx.send(pool.handle()).unwrap();
                Box::new(pool)
            })
            .build()
            .expect("a context");
        let pool = rx.try_recv().expect("the builder made the pool");
        let file = temp_file(&pattern(4, 64 * 1024));

        // One read at a time: each completion must wake the loop (or land
        // before it blocks).
        for round in 0..100u64 {
            let _dog = Watchdog::arm(format!("read {round} to wake the {name} loop"), LIMIT);
            let done = Rc::new(Cell::new(false));
            let d = done.clone();
            ctx.read_at(&file, Vec::with_capacity(64), round * 64, move |_, n, _| {
                assert_eq!(n.unwrap(), 64);
                d.set(true);
            });
            ctx.run_until(|| done.get()).unwrap();
        }

        // Bursts: completions that land while the loop is awake, or
        // blocked, or between.
        for burst in 0..10u64 {
            let _dog = Watchdog::arm(format!("burst {burst} to wake the {name} loop"), LIMIT);
            let finished = Rc::new(Cell::new(0));
            for i in 0..200u64 {
                let f = finished.clone();
                ctx.read_at(&file, Vec::with_capacity(32), i * 32, move |_, n, _| {
                    assert_eq!(n.unwrap(), 32);
                    f.set(f.get() + 1);
                });
            }
            ctx.run_until(|| finished.get() == 200).unwrap();
        }
        let stats = ctx.stats();
        assert!(
            stats.doorbell_rings <= pool.wakeups(),
            "{name}: {} rings, {} wake-ups by the pool (nothing else notifies)",
            stats.doorbell_rings,
            pool.wakeups()
        );
        assert_eq!(ctx.ops_in_flight(), 0);
    }
}
