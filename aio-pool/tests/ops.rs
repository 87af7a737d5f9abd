//! The pool as a context's operations engine: transfers and syncs, many in
//! flight, one wake-up per burst, cancellation, and workers that come and
//! go.

mod common;

use std::cell::{Cell, RefCell};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::{Arc, Barrier, mpsc};
use std::time::Duration;

use aio_core::OpKind;
use aio_core::testing::Watchdog;
use aio_pool::PoolOptions;
use common::{LIMIT, context, pattern, run_until, temp_file, wait_for};
use proptest::prelude::*;

fn options(max_workers: usize) -> PoolOptions {
    PoolOptions {
        max_workers,
        ..PoolOptions::default()
    }
}

#[test]
fn the_context_sends_transfers_and_syncs_to_the_pool() {
    let (ctx, pool) = context(PoolOptions::default());
    for kind in [OpKind::Read, OpKind::Write, OpKind::Fsync] {
        assert_eq!(ctx.op_engine(kind), Some("thread pool"), "{kind:?}");
    }
    assert_eq!(ctx.op_engine(OpKind::Raw), None);
    assert_eq!(pool.workers(), 0, "workers start on demand");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Writes at random offsets, all in flight at once, then reads each
    /// back: the bytes are the ones written.
    #[test]
    fn what_is_written_reads_back_equal(
        segments in prop::collection::vec((0usize..4096, 1usize..65536), 1..8),
        seed in any::<u64>(),
    ) {
        let _dog = Watchdog::arm("a proptest case's writes and reads", LIMIT);
        let (ctx, _pool) = context(options(4));
        let file = temp_file(&[]);
        let mut at = 0u64;
        let mut placed = Vec::new();
        for (i, &(gap, len)) in segments.iter().enumerate() {
            at += gap as u64;
            placed.push((at, pattern(seed.wrapping_add(i as u64), len)));
            at += len as u64;
        }
        let written = Rc::new(Cell::new(0));
        for (offset, data) in &placed {
            let w = written.clone();
            let len = data.len();
            ctx.write_at(&file, data.clone(), *offset, move |_, n, _buf| {
                assert_eq!(n.expect("a write"), len);
                w.set(w.get() + 1);
            });
        }
        run_until(&ctx, "every write", || written.get() == placed.len());
        let read = Rc::new(RefCell::new(Vec::new()));
        for (i, (offset, data)) in placed.iter().enumerate() {
            let r = read.clone();
            ctx.read_at(&file, Vec::with_capacity(data.len()), *offset, move |_, n, buf| {
                r.borrow_mut().push((i, n.expect("a read"), buf));
            });
        }
        run_until(&ctx, "every read", || read.borrow().len() == placed.len());
        for (i, n, buf) in read.borrow().iter() {
            prop_assert_eq!(*n, placed[*i].1.len());
            prop_assert!(buf == &placed[*i].1, "segment {} differs", i);
        }
        prop_assert_eq!(ctx.ops_in_flight(), 0);
    }
}

#[test]
fn a_write_then_fsync_then_fdatasync_then_read_back() {
    let _dog = Watchdog::arm("a write, two syncs and a read", LIMIT);
    let (ctx, _pool) = context(PoolOptions::default());
    let file = temp_file(&[]);
    let data = pattern(7, 10_000);
    let steps = Rc::new(RefCell::new(Vec::new()));
    let s = steps.clone();
    let fd = file.as_raw_fd();
    ctx.write_at(fd, data.clone(), 100, move |ctx, n, _| {
        s.borrow_mut().push(format!("write {}", n.unwrap()));
        let s = s.clone();
        ctx.fsync(fd, move |ctx, r| {
            r.expect("fsync");
            s.borrow_mut().push("fsync".into());
            let s = s.clone();
            ctx.fdatasync(fd, move |ctx, r| {
                r.expect("fdatasync");
                s.borrow_mut().push("fdatasync".into());
                let s = s.clone();
                ctx.read_at(fd, Vec::with_capacity(20_000), 0, move |_, n, buf| {
                    s.borrow_mut().push(format!("read {}", n.unwrap()));
                    assert_eq!(&buf[..100], &[0; 100][..], "the hole reads as zeros");
                    assert_eq!(buf[100..], pattern(7, 10_000)[..]);
                });
            });
        });
    });
    run_until(&ctx, "the read after the syncs", || {
        steps.borrow().len() == 4
    });
    assert_eq!(
        *steps.borrow(),
        ["write 10000", "fsync", "fdatasync", "read 10100"]
    );
}

#[test]
fn errors_come_back_as_the_kernel_gave_them() {
    let _dog = Watchdog::arm("a read and an fsync on a closed fd", LIMIT);
    let (ctx, _pool) = context(PoolOptions::default());
    let got = Rc::new(RefCell::new(Vec::new()));
    let (g, h) = (got.clone(), got.clone());
    // An fd number far above any this process has open.
    let bad: std::os::fd::RawFd = 1 << 20;
    ctx.read_at(bad, Vec::with_capacity(8), 0, move |_, n, _| {
        g.borrow_mut().push(n.unwrap_err().raw_os_error());
    });
    ctx.fsync(bad, move |_, r| {
        h.borrow_mut().push(r.unwrap_err().raw_os_error())
    });
    run_until(&ctx, "both failures", || got.borrow().len() == 2);
    assert_eq!(*got.borrow(), [Some(libc::EBADF), Some(libc::EBADF)]);
}

#[test]
fn two_thousand_reads_in_flight_each_complete_once() {
    const READS: usize = 2000;
    const BLOCK: usize = 16;
    let _dog = Watchdog::arm("2000 reads", LIMIT);
    let (ctx, pool) = context(PoolOptions::default());
    let contents = pattern(3, READS * BLOCK);
    let file = temp_file(&contents);
    let seen = Rc::new(RefCell::new(vec![0u32; READS]));
    let finished = Rc::new(Cell::new(0));
    for i in 0..READS {
        let (seen, finished) = (seen.clone(), finished.clone());
        let want = contents[i * BLOCK..(i + 1) * BLOCK].to_vec();
        ctx.read_at(
            &file,
            Vec::with_capacity(BLOCK),
            (i * BLOCK) as u64,
            move |_, n, buf| {
                assert_eq!(n.expect("a read"), BLOCK);
                assert_eq!(buf, want, "block {i}");
                seen.borrow_mut()[i] += 1;
                finished.set(finished.get() + 1);
            },
        );
    }
    assert_eq!(ctx.ops_in_flight(), READS);
    run_until(&ctx, "2000 reads", || finished.get() == READS);
    // More iterations bring no second completion.
    for _ in 0..10 {
        ctx.poll(false).unwrap();
    }
    assert!(seen.borrow().iter().all(|&n| n == 1), "each exactly once");
    assert_eq!(finished.get(), READS);
    assert_eq!(ctx.ops_in_flight(), 0);
    assert_eq!(pool.jobs_run(), READS as u64);
    let workers = pool.workers();
    assert!(
        (1..=64).contains(&workers),
        "{workers} workers, at most the default 64"
    );
}

/// Every completion of a burst lands before the loop looks: the workers
/// finish their reads and then meet the test at a barrier, which they can
/// only reach once no read is left queued or running.
#[test]
fn a_burst_of_completions_costs_one_wake_up() {
    const WORKERS: usize = 4;
    const READS: usize = 200;
    let _dog = Watchdog::arm("a burst of 200 reads", LIMIT);
    let (ctx, pool) = context(options(WORKERS));
    let file = temp_file(&pattern(1, 4096));
    let finished = Rc::new(Cell::new(0));
    let before = ctx.stats();
    for i in 0..READS {
        let finished = finished.clone();
        ctx.read_at(
            &file,
            Vec::with_capacity(16),
            (i * 16) as u64,
            move |_, n, _| {
                assert_eq!(n.expect("a read"), 16);
                finished.set(finished.get() + 1);
            },
        );
    }
    // Queued after every read: each worker takes one of these only after
    // the read it ran before, and waits in it until all are taken.
    let all_done = Arc::new(Barrier::new(WORKERS + 1));
    for _ in 0..WORKERS {
        let all_done = all_done.clone();
        pool.spawn_blocking(move || {
            all_done.wait();
        })
        .unwrap();
    }
    all_done.wait();
    // The reads, and the barrier closures that have returned by now.
    let run = pool.jobs_run();
    assert!(
        (READS as u64..=(READS + WORKERS) as u64).contains(&run),
        "{run} jobs run: every read"
    );
    assert_eq!(
        pool.wakeups(),
        1,
        "the first completion woke the loop, no other did"
    );
    ctx.poll(false).unwrap();
    assert_eq!(finished.get(), READS, "one iteration took the whole burst");
    let after = ctx.stats();
    assert!(
        after.doorbell_rings - before.doorbell_rings <= 1,
        "{} doorbell rings for one burst",
        after.doorbell_rings - before.doorbell_rings
    );
    assert_eq!(after.iterations - before.iterations, 1);
    assert_eq!(ctx.ops_in_flight(), 0);
}

/// A read into a marked buffer, the pool's only worker held by a blocking
/// closure until the read has been cancelled.
#[test]
fn a_read_cancelled_before_a_worker_took_it_never_runs() {
    let _dog = Watchdog::arm("a cancelled read", LIMIT);
    let (ctx, pool) = context(options(1));
    let file = temp_file(&[0x55; 64]);
    let (started_tx, started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    pool.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        released
            .recv_timeout(LIMIT)
            .expect("the test to release the worker");
    })
    .unwrap();
    started
        .recv_timeout(LIMIT)
        .expect("the only worker to start the blocking closure");
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let cancelled = ctx.read_at(
        &file,
        vec![0xAA; 32].into_boxed_slice(),
        0,
        move |_, n, buf| {
            g.borrow_mut()
                .push(("cancelled", n.map_err(|e| e.raw_os_error()), buf));
        },
    );
    let g = got.clone();
    ctx.read_at(
        &file,
        vec![0xAA; 32].into_boxed_slice(),
        0,
        move |_, n, buf| {
            g.borrow_mut()
                .push(("kept", n.map_err(|e| e.raw_os_error()), buf));
        },
    );
    cancelled.cancel();
    release.send(()).unwrap();
    run_until(&ctx, "both reads' callbacks", || got.borrow().len() == 2);
    let got = got.borrow();
    let cancelled = got.iter().find(|g| g.0 == "cancelled").unwrap();
    assert_eq!(cancelled.1, Err(Some(libc::ECANCELED)));
    assert!(
        cancelled.2.iter().all(|&b| b == 0xAA),
        "its buffer untouched"
    );
    let kept = got.iter().find(|g| g.0 == "kept").unwrap();
    assert_eq!(kept.1, Ok(32));
    assert!(kept.2.iter().all(|&b| b == 0x55));
    assert_eq!(
        pool.jobs_run(),
        2,
        "the closure and the kept read; not the cancelled one"
    );
}

/// A read that a worker has run before the cancel reports its result.
#[test]
fn a_read_cancelled_after_it_ran_reports_its_result() {
    let _dog = Watchdog::arm("a read cancelled too late", LIMIT);
    let (ctx, pool) = context(options(1));
    let file = temp_file(b"0123456789");
    let got = Rc::new(RefCell::new(None));
    let g = got.clone();
    let handle = ctx.read_at(&file, Vec::with_capacity(10), 0, move |_, n, buf| {
        *g.borrow_mut() = Some((n.map_err(|e| e.raw_os_error()), buf));
    });
    // The only worker runs the jobs in order: once it runs this, the read
    // has run.
    let (ran_tx, ran) = mpsc::channel();
    pool.spawn_blocking(move || ran_tx.send(()).unwrap())
        .unwrap();
    ran.recv_timeout(LIMIT)
        .expect("the worker to run the read and then the closure");
    handle.cancel();
    run_until(&ctx, "the read's callback", || got.borrow().is_some());
    assert_eq!(*got.borrow(), Some((Ok(10), b"0123456789".to_vec())));
}

#[test]
fn idle_workers_leave_after_the_timeout_and_come_back_on_demand() {
    let _dog = Watchdog::arm("idle workers to leave", LIMIT * 2);
    let (ctx, pool) = context(PoolOptions {
        max_workers: 3,
        idle_timeout: Duration::from_millis(50),
        ..PoolOptions::default()
    });
    let file = temp_file(&pattern(9, 1024));
    let finished = Rc::new(Cell::new(0));
    for i in 0..30 {
        let finished = finished.clone();
        ctx.read_at(&file, Vec::with_capacity(8), i * 8, move |_, n, _| {
            assert_eq!(n.unwrap(), 8);
            finished.set(finished.get() + 1);
        });
    }
    assert!(pool.workers() <= 3, "{} workers, at most 3", pool.workers());
    run_until(&ctx, "30 reads", || finished.get() == 30);
    wait_for("every idle worker to leave", || pool.workers() == 0);
    let again = Rc::new(Cell::new(false));
    let a = again.clone();
    ctx.read_at(&file, Vec::with_capacity(8), 0, move |_, n, _| {
        assert_eq!(n.unwrap(), 8);
        a.set(true);
    });
    assert_eq!(pool.workers(), 1, "a new worker for the new job");
    run_until(&ctx, "a read after the workers left", || again.get());
}

#[test]
fn a_panicking_closure_does_not_take_its_worker_down() {
    let _dog = Watchdog::arm("a closure after a panicking one", LIMIT);
    let (_ctx, pool) = context(options(1));
    let (tx, rx) = mpsc::channel();
    let first = tx.clone();
    pool.spawn_blocking(move || {
        first.send(std::thread::current().id()).unwrap();
        panic!("a closure that panics (expected in this test)");
    })
    .unwrap();
    pool.spawn_blocking(move || tx.send(std::thread::current().id()).unwrap())
        .unwrap();
    let panicked_on = rx.recv_timeout(LIMIT).expect("the panicking closure");
    let next_on = rx.recv_timeout(LIMIT).expect("the closure after the panic");
    assert_eq!(panicked_on, next_on, "the same worker ran both");
    assert_eq!(pool.workers(), 1);
}

#[test]
fn the_pool_starts_no_more_workers_than_its_maximum_and_zero_means_one() {
    let _dog = Watchdog::arm("reads behind a held worker", LIMIT);
    assert_eq!(PoolOptions::default().max_workers, 64);
    assert_eq!(PoolOptions::default().idle_timeout, Duration::from_secs(10));
    let (ctx, pool) = context(options(0));
    let (started_tx, started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    pool.spawn_blocking(move || {
        started_tx.send(()).unwrap();
        released
            .recv_timeout(LIMIT)
            .expect("the test to release the worker");
    })
    .unwrap();
    started
        .recv_timeout(LIMIT)
        .expect("the worker to start the closure");
    let file = temp_file(&pattern(2, 1024));
    let finished = Rc::new(Cell::new(0));
    for i in 0..10 {
        let finished = finished.clone();
        ctx.read_at(&file, Vec::with_capacity(8), i * 8, move |_, n, _| {
            assert_eq!(n.unwrap(), 8);
            finished.set(finished.get() + 1);
        });
    }
    assert_eq!(pool.workers(), 1, "the reads wait for the one worker");
    release.send(()).unwrap();
    run_until(&ctx, "10 reads on one worker", || finished.get() == 10);
    assert_eq!(pool.workers(), 1);
}

/// `run_blocking` through the context: the closure runs on a worker (which
/// may block), its value comes back to the home thread; a panic comes back
/// as an error; one cancelled before a worker took it never runs.
#[test]
fn run_blocking_returns_the_closures_value_home_and_can_be_cancelled() {
    let _dog = Watchdog::arm("blocking closures through the context", LIMIT);
    let (ctx, pool) = context(options(1));
    assert_eq!(ctx.op_engine(OpKind::Call), Some("thread pool"));
    let home = std::thread::current().id();

    // The only worker blocks in the first closure until the test lets it
    // go: the second, queued behind it, is cancelled and never runs.
    let (started_tx, started) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    ctx.run_blocking(
        move || {
            started_tx.send(()).unwrap();
            released
                .recv_timeout(LIMIT)
                .expect("the test to release it");
            std::thread::current().name().map(str::to_owned)
        },
        move |_, name| {
            assert_eq!(std::thread::current().id(), home, "done on the home thread");
            g.borrow_mut()
                .push(("blocked", name.map(|n| n.unwrap_or_default())));
        },
    );
    started
        .recv_timeout(LIMIT)
        .expect("the worker to start the first closure");
    let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = ran.clone();
    let g = got.clone();
    let cancelled = ctx.run_blocking(
        move || r.store(true, std::sync::atomic::Ordering::SeqCst),
        move |_, outcome| {
            g.borrow_mut().push((
                "cancelled",
                outcome.map(|()| String::new()).inspect_err(|e| {
                    assert_eq!(e.raw_os_error(), Some(libc::ECANCELED));
                }),
            ));
        },
    );
    let g = got.clone();
    ctx.run_blocking(
        || -> String { panic!("a closure that panics (expected in this test)") },
        move |_, outcome| g.borrow_mut().push(("panicked", outcome)),
    );
    cancelled.cancel();
    release.send(()).unwrap();
    run_until(&ctx, "three closures' callbacks", || {
        got.borrow().len() == 3
    });

    let got = got.borrow();
    let find = |what| &got.iter().find(|g| g.0 == what).unwrap().1;
    assert_eq!(
        find("blocked").as_ref().unwrap(),
        "aio-pool",
        "ran on a worker"
    );
    assert!(find("cancelled").is_err(), "ECANCELED");
    assert!(
        !ran.load(std::sync::atomic::Ordering::SeqCst),
        "the cancelled closure never ran"
    );
    let panicked = find("panicked").as_ref().unwrap_err();
    assert!(panicked.to_string().contains("panicked"), "{panicked}");
    assert_eq!(pool.jobs_run(), 2, "the first and the panicking closure");
}

/// A connection accepted (its completion reported) but not yet dispatched
/// when the context is dropped: no callback runs, and the accepted socket
/// is closed with the context, not leaked: the client sees the end of the
/// stream. One worker, so a closure queued after the accept runs only once
/// the accept's completion is reported: the handshake.
#[test]
fn a_connection_accepted_as_the_context_is_dropped_is_closed() {
    use std::io::Read;
    use std::net::{TcpListener, TcpStream};
    let _dog = Watchdog::arm("an accepted connection closed by the context's drop", LIMIT);
    let (ctx, pool) = context(options(1));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    ctx.accept(&listener, move |_, _| r.set(r.get() + 1));
    let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (tx, rx) = mpsc::channel();
    pool.spawn_blocking(move || tx.send(()).unwrap()).unwrap();
    rx.recv_timeout(LIMIT)
        .expect("the worker to be past the accept");
    assert_eq!(ctx.ops_in_flight(), 1, "completed, not yet dispatched");
    drop(ctx);
    assert_eq!(runs.get(), 0, "no callback after the drop");
    let mut byte = [0u8; 1];
    assert_eq!(
        client.read(&mut byte).unwrap(),
        0,
        "the accepted end was closed"
    );
    drop(listener);
}
