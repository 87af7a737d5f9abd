//! Cross-thread stress on every monitor (poll, epoll, io_uring and the
//! sim): threads schedule closures (`Remote::schedule`), ping-pong bottom
//! halves (`RemoteBh`), and spam `notify()` with a coalescing bottom half,
//! while the home thread polls (blocking) and adds and removes handlers.
//! Every closure runs exactly once, every ping-pong schedule runs its
//! bottom half exactly once, the coalescing bottom half runs after its
//! last schedule, no removed handler runs, every handler is dropped once,
//! and the test ends by itself: a timer fails it (panics out of `poll`)
//! after 60 s, and a watchdog thread aborts the binary after 180 s.

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use aio_core::FdHandler;
use aio_core::testing::{Count, DropProbe, TestEvent};
use common::Kind;

const CLOSURE_THREADS: usize = 2;
const CLOSURES_PER_THREAD: usize = 5000;
const PING_PONG_THREADS: usize = 2;
const PING_PONGS: usize = 2000;
const NOTIFIES: usize = 50_000;
const HANDLER_FDS: usize = 8;

/// Waits (spinning politely) until `done` says so, or panics after `limit`.
fn wait_until(limit: Duration, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not done after {limit:?}");
        thread::yield_now();
    }
}

fn stress(kind: Kind) {
    let _watchdog = common::watchdog("stress", Duration::from_secs(180));
    let f = common::harness(kind).fixture();
    let _timer_watchdog = f.watchdog(Duration::from_secs(60));
    let remote = f.ctx.remote();
    let finished = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();

    // Closures, each with an id, each to run once.
    let ran: Arc<Vec<AtomicU32>> = Arc::new(
        (0..CLOSURE_THREADS * CLOSURES_PER_THREAD)
            .map(|_| AtomicU32::new(0))
            .collect(),
    );
    for t in 0..CLOSURE_THREADS {
        let (remote, ran, finished) = (remote.clone(), Arc::clone(&ran), Arc::clone(&finished));
        threads.push(thread::spawn(move || {
            for i in 0..CLOSURES_PER_THREAD {
                let (ran, id) = (Arc::clone(&ran), t * CLOSURES_PER_THREAD + i);
                remote
                    .schedule(move |_| {
                        ran[id].fetch_add(1, Ordering::Relaxed);
                    })
                    .unwrap();
                if i.is_multiple_of(64) {
                    thread::yield_now();
                }
            }
            finished.fetch_add(1, Ordering::SeqCst);
            remote.notify();
        }));
    }

    // Ping-pong bottom halves: schedule, wait for the run, again.
    let mut ping_pong = Vec::new();
    for _ in 0..PING_PONG_THREADS {
        let runs = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&runs);
        let bh = f.ctx.bh(move |_| {
            r.fetch_add(1, Ordering::SeqCst);
        });
        let (rbh, runs2, finished, remote) = (
            bh.remote(),
            Arc::clone(&runs),
            Arc::clone(&finished),
            remote.clone(),
        );
        threads.push(thread::spawn(move || {
            for i in 0..PING_PONGS {
                rbh.schedule().unwrap();
                wait_until(Duration::from_secs(50), "ping-pong", || {
                    runs2.load(Ordering::SeqCst) > i
                });
            }
            finished.fetch_add(1, Ordering::SeqCst);
            remote.notify();
        }));
        ping_pong.push((bh, runs));
    }

    // A burst of notifications, with a bottom half scheduled now and then:
    // its runs coalesce, but one must follow the last schedule.
    let coalescing_runs = Rc::new(Cell::new(0usize));
    let last_schedule_seen = Rc::new(Cell::new(false));
    let last_scheduled = Arc::new(AtomicBool::new(false));
    let (c, seen, last) = (
        Rc::clone(&coalescing_runs),
        Rc::clone(&last_schedule_seen),
        Arc::clone(&last_scheduled),
    );
    let coalescing = f.ctx.bh(move |_| {
        c.set(c.get() + 1);
        seen.set(last.load(Ordering::SeqCst));
    });
    let coalescing_schedules = Arc::new(AtomicUsize::new(0));
    {
        let (rbh, remote, finished, last, schedules) = (
            coalescing.remote(),
            remote.clone(),
            Arc::clone(&finished),
            Arc::clone(&last_scheduled),
            Arc::clone(&coalescing_schedules),
        );
        threads.push(thread::spawn(move || {
            for i in 0..NOTIFIES {
                remote.notify();
                if i.is_multiple_of(10) {
                    if i + 10 >= NOTIFIES {
                        last.store(true, Ordering::SeqCst);
                    }
                    rbh.schedule().unwrap();
                    schedules.fetch_add(1, Ordering::SeqCst);
                }
            }
            finished.fetch_add(1, Ordering::SeqCst);
            remote.notify();
        }));
    }
    let thread_count = threads.len();

    // The home thread: poll, and add and remove handlers as it goes.
    let evs: Vec<Rc<TestEvent>> = (0..HANDLER_FDS).map(|_| Rc::new(f.event())).collect();
    let mut current: Vec<Option<Rc<Cell<bool>>>> = vec![None; HANDLER_FDS];
    let (made, drops, handler_runs) = (Count::new(), Count::new(), Count::new());
    let mut iteration = 0usize;
    let all_ran = || ran.iter().all(|n| n.load(Ordering::Relaxed) == 1);
    while finished.load(Ordering::SeqCst) < thread_count || !all_ran() {
        iteration += 1;
        if iteration.is_multiple_of(4) {
            let i = (iteration / 4) % HANDLER_FDS;
            let ev = &evs[i];
            if let Some(alive) = current[i].take() {
                f.ctx.set_fd_handler(&**ev, None).unwrap();
                alive.set(false);
            } else {
                made.hit();
                let alive = Rc::new(Cell::new(true));
                let (e, a, probe, runs) = (
                    Rc::clone(ev),
                    Rc::clone(&alive),
                    DropProbe::new(&drops),
                    handler_runs.clone(),
                );
                f.ctx
                    .set_fd_handler(
                        &**ev,
                        Some(FdHandler::new().on_read(move |_| {
                            let _ = &probe;
                            assert!(a.get(), "a removed handler ran");
                            e.clear();
                            runs.hit();
                        })),
                    )
                    .unwrap();
                current[i] = Some(alive);
                if iteration.is_multiple_of(8) {
                    ev.set();
                }
            }
        }
        f.ctx.poll(true).unwrap();
    }
    for t in threads {
        t.join().unwrap();
    }
    // Whatever was scheduled last is served by now or by these.
    f.ctx.poll(false).unwrap();
    f.ctx.poll(false).unwrap();

    for (id, n) in ran.iter().enumerate() {
        assert_eq!(n.load(Ordering::Relaxed), 1, "closure {id}");
    }
    for (_, runs) in &ping_pong {
        assert_eq!(runs.load(Ordering::SeqCst), PING_PONGS);
    }
    let schedules = coalescing_schedules.load(Ordering::SeqCst);
    assert!((1..=schedules).contains(&coalescing_runs.get()));
    assert!(
        last_schedule_seen.get(),
        "no run followed the last schedule"
    );
    assert!(!coalescing.is_scheduled());
    for (i, ev) in evs.iter().enumerate() {
        if current[i].take().is_some() {
            f.ctx.set_fd_handler(&**ev, None).unwrap();
        }
    }
    assert_eq!(drops.get(), made.get(), "a handler was not dropped");
    assert!(handler_runs.get() > 0);
    assert_eq!(f.ctx.handler_count(), 0);
}

on_every_monitor!(sim: stress);
